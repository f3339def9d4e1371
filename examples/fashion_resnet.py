"""Bring your own model: which activation is best for *this* ResNet on Fashion-MNIST?

The network below is an ordinary PyTorch ResNet (not an actlab model) written with
``nn.ReLU``. For each run, actlab swaps its activations for the one under study
(``actlab.swap``), initialises every conv and linear layer with the gain of the activation
it reads (``actlab.init_``), and the study runs the grid activations x seeds through the
same store, statistics, report and recommendation as actlab's own tasks.

    python examples/fashion_resnet.py             # relu, gelu, silu, mish x 3 seeds
    python examples/fashion_resnet.py --quick     # a short version (a test runs it)
    actlab study --tasks examples/fashion_resnet.py:train -a relu,gelu,silu,mish --seeds 3

Fashion-MNIST is read from the Debian package's directory (``--data-dir`` to change it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.experiments.data import load_dataset

DATA_DIR = "/usr/share/datasets/fashion-mnist"
ACTIVATIONS = ("relu", "gelu", "silu", "mish")


class Block(nn.Module):
    """A basic residual block: conv-bn-relu-conv-bn, plus the (projected) input, relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """28x28 -> stem (stride 2, w) -> blocks at 14x14 (w) and 7x7 (2w) -> pool -> classes."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.layers = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``(x, y)``, in batches."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), 1000):
        out = model(x[i : i + 1000])
        loss += float(F.cross_entropy(out, y[i : i + 1000], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + 1000]).sum())
    model.train()
    return loss / len(y), correct / len(y)


@actlab.task(
    name="fashion_resnet",
    metric="test_accuracy",
    higher_is_better=True,
    architecture="cnn",
    defaults={"epochs": 2, "train_size": 10000, "test_size": 10000, "lr": 5e-3,
              "batch": 64, "width": 16, "data_dir": DATA_DIR},
    quick={"epochs": 1, "train_size": 1500, "test_size": 2000, "width": 8},
)
def train(activation: actlab.Activation, seed: int, config: dict, device: torch.device) -> dict:
    """A small ResNet on Fashion-MNIST, its activations swapped and re-initialised."""
    data = load_dataset("fashion_mnist", data_dir=config["data_dir"]).to(device)
    n, m = config["train_size"], config["test_size"]
    x, y = data.x_train[:n], data.y_train[:n]
    model = ResNet(config["width"])
    actlab.swap(model, activation)   # every nn.ReLU -> the activation under study
    actlab.init_(model)              # each conv/linear with the gain of what it reads
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"])
    order = torch.Generator().manual_seed(seed)
    train_loss, test_loss = [], []
    for _ in range(config["epochs"]):
        perm = torch.randperm(n, generator=order).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, config["batch"]):
            idx = perm[i : i + config["batch"]]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        train_loss.append(float(total) / n)
        test_loss.append(evaluate(model, data.x_test[:m], data.y_test[:m])[0])
    _, accuracy = evaluate(model, data.x_test[:m], data.y_test[:m])
    return {"test_accuracy": accuracy, "train_loss": train_loss, "test_loss": test_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (1 epoch, 1500 images)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-a", "--activations", default=",".join(ACTIVATIONS))
    parser.add_argument("--db", default="fashion_resnet.sqlite")
    parser.add_argument("-o", "--out", default="fashion_resnet.html", help="the HTML report")
    parser.add_argument("--data-dir", default=DATA_DIR)
    args = parser.parse_args()

    from actlab.experiments.stats import statements, summarize
    from actlab.recommend import recommend_from_study
    from actlab.report.html import write_report

    activations = [a.strip() for a in args.activations.split(",") if a.strip()]
    print("what init_ applies to this ResNet with each activation:")
    for name in activations:
        model = ResNet()
        actlab.swap(model, name)
        print(f"\n{name}:\n{actlab.init_(model)}")
    study = actlab.Study(tasks=["fashion_resnet"], activations=activations, seeds=args.seeds,
                         quick=args.quick, data_dir=args.data_dir)
    t0 = time.perf_counter()
    summary = actlab.run_study(study, args.db, workers=args.workers)
    print(f"\n{summary.line()} ({time.perf_counter() - t0:.0f} s)")
    df = actlab.load_results(args.db)
    table = summarize(df[df["task"] == "fashion_resnet"])
    for setting, g in table.groupby("setting"):
        print(f"\n{setting}: test accuracy over {args.seeds} seed(s)")
        for _, r in g.iterrows():
            vs = f"p Holm vs best: {r['p_holm']:.3g}" if r["rank"] > 1 else "best"
            print(f"  {r['rank']}. {r['activation']:<6} {r['mean']:.4f} ± {r['std']:.4f}"
                  f"  (n={r['n']}, {vs})")
        print(statements(g)[setting])
    print()
    print(recommend_from_study(args.db, audit=False))
    path = write_report(args.db, args.out)
    print(f"\nreport: {Path(path or args.out).resolve()}")


if __name__ == "__main__":
    main()
