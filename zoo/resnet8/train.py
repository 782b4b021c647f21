"""Reproducible training recipe for the MLPerf Tiny ResNet-8 on CIFAR-10 (PyTorch, CPU).

    python zoo/resnet8/train.py --data ../shared/data --epochs 40 --out zoo/resnet8/runs/r1

Writes ``train_log.csv`` (one row per epoch) and ``resnet8_fp32.onnx``. The exported graph
takes raw pixel values (float32 NCHW, 0..255) and normalises inside the graph, so the
preprocessing travels with the model and is never guessed.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from axonnx.data.cifar10 import load_split  # noqa: E402

# Per-channel statistics of the CIFAR-10 training set, in 0..255 pixel units.
MEAN = (125.307, 122.950, 113.865)
STD = (62.993, 62.089, 66.705)


class ResidualStack(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            # MLPerf Tiny: a 1x1 strided conv shortcut (with BN folded at export).
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class ResNet8(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("inv_std", (1.0 / torch.tensor(STD)).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.stack1 = ResidualStack(16, 16, 1)
        self.stack2 = ResidualStack(16, 32, 2)
        self.stack3 = ResidualStack(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = (x - self.mean) * self.inv_std
        x = F.relu(self.bn(self.stem(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded crop and horizontal flip, batched."""
    n = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    idx = torch.arange(32)
    rows = (dy[:, None] + idx[None, :])[:, None, :, None].expand(n, 3, 32, 40)
    out = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + idx[None, :])[:, None, None, :].expand(n, 3, 32, 32)
    out = torch.gather(out, 3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), 1000):
            correct += (model(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum().item()
    return correct / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="zoo/resnet8/runs/latest")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train = load_split("train", args.data)
    test = load_split("test", args.data)
    x_train = torch.from_numpy(train.images).float()
    y_train = torch.from_numpy(train.labels)
    x_test = torch.from_numpy(test.images).float()
    y_test = torch.from_numpy(test.labels)

    model = ResNet8().to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(y_train) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.15, div_factor=10, final_div_factor=200,
    )
    gen = torch.Generator().manual_seed(args.seed)
    log_path = out / "train_log.csv"
    with open(log_path, "w", newline="") as fh:
        csv.writer(fh).writerow(["epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds"])
    t_start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(y_train), generator=gen)
        total_loss = total_correct = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch:(step + 1) * args.batch]
            xb = augment(x_train[idx], gen).contiguous(memory_format=torch.channels_last)
            yb = y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(yb)
            total_correct += (logits.argmax(1) == yb).sum().item()
        seen = steps_per_epoch * args.batch
        test_acc = evaluate(model, x_test, y_test)
        row = [epoch, total_loss / seen, total_correct / seen, test_acc,
               sched.get_last_lr()[0], time.time() - t0]
        with open(log_path, "a", newline="") as fh:
            csv.writer(fh).writerow([f"{v:.5f}" if isinstance(v, float) else v for v in row])
        print(f"epoch {epoch}/{args.epochs} loss {row[1]:.4f} train {row[2]:.4f} "
              f"test {test_acc:.4f} ({row[5]:.0f}s)", flush=True)
        torch.save(model.state_dict(), out / "last.pt")

    model.eval()
    dummy = torch.zeros(1, 3, 32, 32)
    onnx_path = out / "resnet8_fp32.onnx"
    torch.onnx.export(
        model.float().to(memory_format=torch.contiguous_format), dummy, str(onnx_path),
        input_names=["input"], output_names=["logits"], opset_version=17,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )
    summary = {"epochs": args.epochs, "seed": args.seed, "final_test_acc": test_acc,
               "train_seconds": round(time.time() - t_start, 1), "args": vars(args),
               "torch": torch.__version__}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
