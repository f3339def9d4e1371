"""Forward second moment through a deep plain MLP: PyTorch's default init against init_.

For each activation, a 32-layer MLP (width 256, no normalisation) is built with PyTorch's
default init, then re-initialised with ``actlab.init_``; a batch of standard normal inputs
goes through and ``E[h^2]`` of each Linear layer's output is printed at a few depths (the
batch mean; in brackets the range of the per-input second moments at the last layer), with
the slope of the variance map at the fixed point (> 1: unstable, deviations grow).

    python benchmarks/init_depth.py
    python benchmarks/init_depth.py --depth 64 --width 512 --seeds 3
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import actlab
from actlab.analysis import act_moments

TORCH = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "mish": nn.Mish, "gelu": nn.GELU,
         "silu": nn.SiLU}


def moments(model: nn.Sequential, x: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    """E[h^2] after each Linear, and the per-input second moments at the output."""
    out = []
    with torch.no_grad():
        for m in model:
            x = m(x)
            if isinstance(m, nn.Linear):
                out.append(float(x.pow(2).mean()))
    return out, x.pow(2).mean(dim=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=32)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("-a", "--activations", default=",".join(TORCH))
    args = p.parse_args()
    torch.set_num_threads(1)
    marks = sorted({1, 8, 16, args.depth})
    head = ["activation", "slope", "seed", "init"] + [f"L{k}" for k in marks] + ["per-input"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in args.activations.split(","):
        g2 = actlab.gain(name) ** 2
        slope = g2 * act_moments(name).zffp  # d/dq of q -> g^2 E[f(sqrt(q) z)^2] at q = 1
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = nn.Sequential(*[m for _ in range(args.depth)
                                    for m in (nn.Linear(args.width, args.width), TORCH[name]())])
            x = torch.randn(args.batch, args.width)
            for label in ("default", "init_"):
                if label == "init_":
                    actlab.init_(model)
                qs, per_input = moments(model, x)
                cells = [name, f"{slope:.3f}", str(seed), label]
                cells += [f"{qs[k - 1]:.3g}" for k in marks]
                cells.append(f"{per_input.min():.2g}..{per_input.max():.2g}")
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
