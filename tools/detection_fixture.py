#!/usr/bin/python3
"""Make test/fixtures/detection-heads.json: head outputs of RetinaNet and FCOS and the detections
torchvision 0.14's own postprocess_detections makes of them, for test/heads.test.ts (spikeport's
decoders must give the same boxes, scores, labels and order).

    /usr/bin/python3 tools/detection_fixture.py [OUT.json]

The input is 40x56 (not a multiple of 128, so the pyramid's grids are rounded up and the anchor
generator's strides are not powers of two: 40 // 3 = 13), 3 classes, 2 images. The grids are
those torchvision's ResNet-50-FPN makes of that input (its backbone is run once on zeros). Head
outputs are seeded random numbers with 4 decimals (exact in JSON), spread so that some scores
pass the thresholds and some box deltas reach the log(1000/16) clip. Each model has a case with
torchvision's defaults and one with other thresholds, top-k and detections per image.
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision.models.detection import fcos_resnet50_fpn, retinanet_resnet50_fpn
from torchvision.models.detection.image_list import ImageList

torch.set_num_threads(2)
H, W, CLASSES, IMAGES = 40, 56, 3, 2
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "detection-heads.json")
rng = np.random.default_rng(27)


def grids(det):
    with torch.no_grad():
        feats = list(det.backbone(torch.zeros(1, 3, H, W)).values())
    return [tuple(f.shape[-2:]) for f in feats]


def f32(v):
    """A float32 as the shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def values(shape, mean, std, unique=False):
    """Seeded normal values with 4 decimals; `unique`: no two alike (so that no scores tie)."""
    v = np.round(rng.normal(mean, std, size=shape), 4)
    while unique and len(np.unique(v)) < v.size:
        flat = v.reshape(-1)
        _, first = np.unique(flat, return_index=True)
        again = np.setdiff1d(np.arange(flat.size), first)
        flat[again] = np.round(rng.normal(mean, std, size=again.size), 4)
    return v.astype(np.float32)


def run(det, kind, heads, cases):
    sizes = grids(det)
    feats = [torch.zeros(IMAGES, 1, h, w) for h, w in sizes]
    images = ImageList(torch.zeros(IMAGES, 3, H, W), [(H, W)] * IMAGES)
    anchors = det.anchor_generator(images, feats)
    per_level = [h * w for h, w in sizes]
    A = heads["cls_logits"].shape[1] // sum(per_level)
    split = {k: list(torch.from_numpy(v).split([s * A for s in per_level], dim=1)) for k, v in heads.items()}
    split_anchors = [list(a.split([s * A for s in per_level])) for a in anchors]
    result = []
    for options in cases:
        det.score_thresh = options["scoreThreshold"]
        det.topk_candidates = options["topCandidates"]
        det.nms_thresh = options["nmsThreshold"]
        det.detections_per_img = options["detectionsPerImage"]
        with torch.no_grad():
            found = det.postprocess_detections(split, split_anchors, images.image_sizes)
        result.append(
            {
                "options": options,
                "detections": [
                    {
                        "boxes": [f32(v) for v in d["boxes"].flatten()],
                        "scores": [f32(v) for v in d["scores"]],
                        "labels": [int(v) for v in d["labels"]],
                    }
                    for d in found
                ],
            }
        )
        for d in found:
            # Ties in score have no defined order (torch's sort is not stable): the fixture has none.
            assert len(set(d["scores"].tolist())) == len(d["scores"]), f"{kind}: tied scores, change the seed"
        print(f"{kind} {options}: " + ", ".join(str(len(d["labels"])) for d in found) + " detections")
    return {
        "grids": [list(s) for s in sizes],
        "outputs": {k: {"dims": list(v.shape), "data": [round(float(x), 4) for x in v.flatten()]} for k, v in heads.items()},
        "cases": result,
    }


torch.manual_seed(0)
retina = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=CLASSES).eval()
rows = sum(h * w for h, w in grids(retina)) * 9
reg = values((IMAGES, rows, 4), 0.0, 0.4)
reg[:, ::37, 2:] = 4.5  # beyond the clip of log(1000/16) = 4.135
retina_heads = {"cls_logits": values((IMAGES, rows, CLASSES), -3.5, 1.5, unique=True), "bbox_regression": reg}
fcos = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=CLASSES).eval()
points = sum(h * w for h, w in grids(fcos))
fcos_heads = {
    "cls_logits": values((IMAGES, points, CLASSES), -1.5, 1.5, unique=True),
    "bbox_regression": np.maximum(values((IMAGES, points, 4), 1.5, 1.0), 0),
    "bbox_ctrness": values((IMAGES, points, 1), 0.0, 1.0, unique=True),
}
fixture = {
    "made": "tools/detection_fixture.py with torchvision " + __import__("torchvision").__version__,
    "input": [H, W],
    "classes": CLASSES,
    "retinanet": run(
        retina,
        "retinanet",
        retina_heads,
        [
            {"scoreThreshold": 0.05, "topCandidates": 1000, "nmsThreshold": 0.5, "detectionsPerImage": 300},
            {"scoreThreshold": 0.1, "topCandidates": 20, "nmsThreshold": 0.3, "detectionsPerImage": 15},
        ],
    ),
    "fcos": run(
        fcos,
        "fcos",
        fcos_heads,
        [
            {"scoreThreshold": 0.2, "topCandidates": 1000, "nmsThreshold": 0.6, "detectionsPerImage": 100},
            {"scoreThreshold": 0.3, "topCandidates": 10, "nmsThreshold": 0.4, "detectionsPerImage": 5},
        ],
    ),
}
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {out} ({os.path.getsize(out)} bytes)")
