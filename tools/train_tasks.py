#!/usr/bin/python3
"""Train the bundled segmentation, detection and video models with Debian's PyTorch.

Usage (from the repository root, after npm ci && npm run build):
    /usr/bin/python3 tools/train_tasks.py mnist-fcn        # FCN-style segmenter (mnist-seg)
    /usr/bin/python3 tools/train_tasks.py mnist-deeplab    # DeepLab-style: dilated convs, ASPP (mnist-seg)
    /usr/bin/python3 tools/train_tasks.py mnist-centernet  # anchor-free detector (mnist-det)
    /usr/bin/python3 tools/train_tasks.py mnist-r3d        # 3-D conv video classifier (mnist-video)

The data are spikeport's generated sets: the script asks spikeport to write them
(`spikeport data mnist-seg:train --out .cache/...npz`, cached, never committed), so training and
evaluation see the same samples. Writes models/<name>.onnx and models/<name>.json; the ANN metric
in the manifest is computed by spikeport itself (the same mIoU / mAP / accuracy code that scores
the SNN).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "dist", "src", "cli", "main.js")
CLASSES = 10
IGNORE = 255
STRIDE = 4  # detector output cell size in pixels


def spikeport(*args):
    return subprocess.run(["node", CLI, *args], check=True, capture_output=True, text=True).stdout


def dataset(kind, split):
    path = os.path.join(ROOT, ".cache", f"{kind}-{split}.npz")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        spikeport("data", f"{kind}:{split}", "--out", path)
    return np.load(path)


def cbr(cin, cout, k=3, stride=1, dilation=1, dims=2):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    pad = dilation * (k // 2)
    return nn.Sequential(conv(cin, cout, k, stride, pad, dilation=dilation, bias=False), bn(cout), nn.ReLU())


class FCN(nn.Module):
    """Strided conv encoder, 1×1 classifier at 1/4 resolution, bilinear upsampling (after the readout)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(cbr(1, 16), cbr(16, 32, stride=2), cbr(32, 64, stride=2), cbr(64, 64))
        self.classifier = nn.Conv2d(64, CLASSES + 1, 1)

    def forward(self, x):
        return F.interpolate(self.classifier(self.body(x)), scale_factor=4, mode="bilinear", align_corners=False)


class DeepLab(nn.Module):
    """Dilated convolutions and an ASPP head (1×1, dilation 2, dilation 4, image pooling), bilinear upsampling."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(cbr(1, 16), cbr(16, 32, stride=2), cbr(32, 64, stride=2), cbr(64, 64, dilation=2))
        self.aspp = nn.ModuleList([cbr(64, 32, k=1), cbr(64, 32, dilation=2), cbr(64, 32, dilation=4)])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(64, 32, 1), nn.ReLU())
        self.project = cbr(128, 64, k=1)
        self.classifier = nn.Conv2d(64, CLASSES + 1, 1)

    def forward(self, x):
        h = self.body(x)
        pooled = self.pool(h).expand(-1, -1, h.shape[2], h.shape[3])
        h = self.project(torch.cat([b(h) for b in self.aspp] + [pooled], dim=1))
        return F.interpolate(self.classifier(h), scale_factor=4, mode="bilinear", align_corners=False)


class CenterNet(nn.Module):
    """Anchor-free detector: one head [N, 10 heat-map logits + 2 size + 2 offset, 16, 16], stride 4."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(cbr(1, 16), cbr(16, 32, stride=2), cbr(32, 64, stride=2), cbr(64, 64), cbr(64, 64, dilation=2))
        self.neck = cbr(64, 64)
        self.head = nn.Conv2d(64, CLASSES + 4, 1)
        with torch.no_grad():
            self.head.bias[:CLASSES] = -2.19  # heat-map prior 0.1

    def forward(self, x):
        return self.head(self.neck(self.body(x)))


class R3D(nn.Module):
    """3-D convolutions over (frames, height, width), as R3D/MC3 on a small scale."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            cbr(1, 8, dims=3), nn.MaxPool3d((1, 2, 2)),
            cbr(8, 16, dims=3), nn.MaxPool3d(2),
            cbr(16, 32, dims=3), nn.MaxPool3d(2),
            cbr(32, 32, dims=3))
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x):
        return self.fc(self.body(x).mean(dim=(2, 3, 4)))


def seg_loss(model, x, masks):
    return F.cross_entropy(model(x), masks.long(), ignore_index=IGNORE)


def det_targets(boxes, n, h, w):
    """Gaussian heat maps at box centres, size and offset targets at the centre cells (CenterNet)."""
    heat = torch.zeros(n, CLASSES, h, w)
    reg = torch.zeros(n, 4, h, w)
    mask = torch.zeros(n, h, w)
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    for img, cls, bx, by, bw, bh in boxes:
        cx, cy = (bx + bw / 2) / STRIDE, (by + bh / 2) / STRIDE
        ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
        sigma = max(0.5, min(bw, bh) / STRIDE / 3)
        g = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2))
        heat[int(img), int(cls)] = torch.maximum(heat[int(img), int(cls)], g)
        reg[int(img), :, iy, ix] = torch.tensor([bw / STRIDE, bh / STRIDE, cx - ix, cy - iy])
        mask[int(img), iy, ix] = 1
    return heat, reg, mask


def det_loss(model, x, target):
    heat, reg, mask = target
    out = model(x)
    p = torch.sigmoid(out[:, :CLASSES]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum()
    npos = pos.sum().clamp(min=1)
    l1 = (F.l1_loss(out[:, CLASSES:], reg, reduction="none").sum(1) * mask).sum() / npos
    return focal / npos + l1


MODELS = {
    "mnist-fcn": {"net": FCN, "data": "mnist-seg", "task": "segmentation", "epochs": 6, "lr": 3e-3},
    "mnist-deeplab": {"net": DeepLab, "data": "mnist-seg", "task": "segmentation", "epochs": 6, "lr": 3e-3},
    "mnist-centernet": {"net": CenterNet, "data": "mnist-det", "task": "detection", "epochs": 14, "lr": 3e-3},
    "mnist-r3d": {"net": R3D, "data": "mnist-video", "task": "video", "epochs": 3, "lr": 3e-3, "limit": 6000},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(MODELS))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, help="train on the first N samples only")
    ap.add_argument("--manifest-only", action="store_true",
                    help="do not train: evaluate models/<name>.onnx (made earlier by this script) and write its manifest")
    args = ap.parse_args()
    cfg = MODELS[args.name]
    epochs = args.epochs or cfg["epochs"]
    # Debian's PyTorch runs 3-D convolutions slowly (generic BLAS): the video model trains on fewer clips.
    args.limit = args.limit or cfg.get("limit")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    tr = dataset(cfg["data"], "train")
    x = torch.tensor(tr["x"][:args.limit], dtype=torch.float32) / 255.0
    mean, std = round(x.mean().item(), 4), round(x.std().item(), 4)
    x = (x - mean) / std
    n = len(x)
    if cfg["task"] == "segmentation":
        y = torch.tensor(tr["masks"][:n].astype(np.int64))
    elif cfg["task"] == "video":
        y = torch.tensor(tr["y"][:n].astype(np.int64))
    else:
        boxes = tr["boxes"]
        boxes = boxes[boxes[:, 0] < n]

    path = os.path.join(ROOT, "models", f"{args.name}.onnx")
    if args.manifest_only:
        return write_manifest(args, cfg, path, epochs, n, mean, std, list(x.shape[1:]), None)
    model = cfg["net"]()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps = epochs * ((n + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            if cfg["task"] == "segmentation":
                loss = seg_loss(model, x[idx], y[idx])
            elif cfg["task"] == "video":
                loss = F.cross_entropy(model(x[idx]), y[idx])
            else:
                sel = boxes[np.isin(boxes[:, 0], idx.numpy())].copy()
                remap = {int(v): k for k, v in enumerate(idx.tolist())}
                sel[:, 0] = [remap[int(v)] for v in sel[:, 0]]
                loss = det_loss(model, x[idx], det_targets(sel, len(idx), 64 // STRIDE, 64 // STRIDE))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs} loss {total / n:.4f} ({time.time() - t0:.0f}s)", flush=True)

    model.eval()
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    shape = list(x.shape[1:])
    torch.onnx.export(model, torch.zeros(1, *shape), path, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    import onnx
    m = onnx.load(path)
    norm = {"mean": [mean], "std": [std]}
    for key, value in [("spikeport.normalize", json.dumps(norm)), ("spikeport.task", cfg["task"]),
                       ("spikeport.dataset", cfg["data"])]:
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.save(m, path)
    write_manifest(args, cfg, path, epochs, n, mean, std, shape, round(time.time() - t0))


def write_manifest(args, cfg, path, epochs, n, mean, std, shape, seconds):
    norm = {"mean": [mean], "std": [std]}
    # The ANN's metric, computed by spikeport's own scorer on the generated test split.
    out = os.path.join(ROOT, ".cache", f"{args.name}-ann.json")
    spikeport("simulate", path, "--data", f"{cfg['data']}:test", "--T", "1", "--iterations", "1", "--site-errors", "0", "--json", out, "-q")
    ann = json.load(open(out))["ann"]
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    metric = {"segmentation": "mIoU", "detection": "mAP@[.50:.95]", "video": "clip top-1"}[cfg["task"]]
    manifest = {
        "name": args.name,
        "file": f"{args.name}.onnx",
        "sha256": sha,
        "task": cfg["task"],
        "dataset": cfg["data"],
        "normalize": norm,
        "inputShape": shape,
        "classes": CLASSES + (1 if cfg["task"] == "segmentation" else 0),
        "ann": {"metric": metric, "split": "test", "value": round(ann["metric"], 4),
                "secondary": None if ann["secondary"] is None else round(ann["secondary"], 4), "samples": 1000},
        "training": {"epochs": epochs, "seed": args.seed, "batch": args.batch, "samples": n, "optimizer": "Adam+OneCycle",
                     "lr": cfg["lr"], "torch": torch.__version__, "seconds": seconds},
        "command": " ".join(["/usr/bin/python3", "tools/train_tasks.py", args.name]
                            + ([f"--epochs {args.epochs}"] if args.epochs else []) + ([f"--limit {args.limit}"] if args.limit else [])),
    }
    with open(os.path.join(ROOT, "models", f"{args.name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {path}: ANN {metric} {ann['metric'] * 100:.2f}%")


if __name__ == "__main__":
    main()
