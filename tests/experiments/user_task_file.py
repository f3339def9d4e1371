"""A user's tasks file, as the tests of ``--tasks file.py:function`` write it.

``write_task_file(folder, name)`` writes ``<name>_tasks.py`` with two tasks: ``name`` (a
real XOR network of the user's own, its activation swapped in by ``actlab.swap`` and
initialised by ``actlab.init_``; metric ``accuracy``) and ``<name>_broken`` (raises
``RuntimeError`` from a helper function, to check that the user's traceback is kept).
"""

from __future__ import annotations

from pathlib import Path

TASK_FILE = '''
import math
import torch
import actlab

@actlab.task(metric="accuracy", higher_is_better=True, architecture="mlp",
             defaults={"steps": 30, "lr": 0.05}, quick={"steps": 3})
def NAME(activation, seed, config):
    """XOR with the user's own network, its activation swapped in."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    actlab.swap(net, activation)
    actlab.init_(net)
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
    losses = []
    for _ in range(config["steps"]):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    accuracy = float(((net(x).squeeze(1) > 0).float() == y).float().mean())
    return {"accuracy": accuracy, "steps_seen": config["steps"], "loss": losses}

@actlab.task(metric="accuracy", higher_is_better=True, name="NAME_broken")
def broken(activation, seed, config):
    return helper(seed)

def helper(seed):
    raise RuntimeError(f"user bug on seed {seed}")
'''


def write_task_file(folder: Path, name: str) -> Path:
    """Write the tasks file for task ``name`` into ``folder``; return its path."""
    path = folder / f"{name}_tasks.py"
    path.write_text(TASK_FILE.replace("NAME", name))
    return path
