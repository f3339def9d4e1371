"""Kernel and model timing against native PyTorch and the copy roofline."""
