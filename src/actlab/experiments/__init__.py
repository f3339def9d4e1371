"""Datasets, models, training loop, tasks, studies, results store, executors, statistics."""
