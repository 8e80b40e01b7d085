#!/usr/bin/python3
"""Export torchvision's RetinaNet and FCOS (ResNet-50-FPN) as spikeport converts detectors:
backbone + FPN + head, without GeneralizedRCNNTransform and without postprocess_detections
(spikeport decodes the heads itself, as torchvision does). The ONNX files are NOT committed
(about 140 MB each); docs/detectors.md gives the commands.

    /usr/bin/python3 tools/export_detectors.py OUTDIR [--size 256] [--classes 91]
        [--models retinanet,fcos] [--images DIR] [--weights-retinanet FILE] [--weights-fcos FILE]

Outputs: retinanet.onnx with cls_logits [n, HWA, C] and bbox_regression [n, HWA, 4];
fcos.onnx with cls_logits [n, HW, C], bbox_regression [n, HW, 4] and bbox_ctrness [n, HW, 1]
(levels P3..P7 concatenated, as torchvision's heads return them); input "input" [n, 3, S, S],
dynamic batch, opset 13, with torchvision's ImageNet mean/std as spikeport.normalize metadata.

With --weights-* (a torchvision state_dict, e.g. the COCO checkpoints) the trained network is
exported as it is. Without, no weights can be downloaded here, so the network is random
(seeded) and made usable for a conversion study: every BatchNorm's statistics are measured on
a few images (--images DIR of PNG/JPEG files, else seeded noise), so activations have the
scale a trained network's have; the last layers of the heads are scaled so that their outputs
vary from anchor to anchor, and the classification bias is set so that about `--candidates`
anchor-class pairs per image pass torchvision's score threshold (0.05 RetinaNet, 0.2 FCOS).
The result is printed: per model, how many detections torchvision's own postprocess gives.
"""
import argparse
import math
import os
import sys

import numpy as np
import onnx
import torch
import torchvision
from torchvision.models.detection import fcos_resnet50_fpn, retinanet_resnet50_fpn
from torchvision.models.detection.image_list import ImageList

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


class Heads(torch.nn.Module):
    """backbone + FPN + head of a torchvision detector: the head outputs as a tuple."""

    def __init__(self, det, names):
        super().__init__()
        self.backbone = det.backbone
        self.head = det.head
        self.names = names

    def forward(self, x):
        features = list(self.backbone(x).values())
        out = self.head(features)
        return tuple(out[k] for k in self.names)


def load_images(folder, size, count):
    """Up to `count` images of a folder (sorted), RGB, resized to size x size, normalised."""
    from PIL import Image

    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".png", ".jpg", ".jpeg")))[:count]
    if not files:
        sys.exit(f"{folder}: no PNG or JPEG images")
    arrays = []
    for f in files:
        im = Image.open(os.path.join(folder, f)).convert("RGB").resize((size, size), Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def measure_batchnorm(net, images):
    """Every BatchNorm's running statistics from the images (cumulative average, train mode)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for k in range(0, len(images), 4):
            net.backbone(images[k : k + 4])
    net.eval()


def head_features(det, images):
    """The input of each head's last convolutions, per level (eval mode)."""
    with torch.no_grad():
        feats = list(det.backbone(images).values())
        cls = [det.head.classification_head.conv(f) for f in feats]
        reg = [det.head.regression_head.conv(f) for f in feats]
    return cls, reg


def scale_conv(conv, inputs, out_std):
    """Scale a conv's weights so its output (without bias) has this std over the inputs."""
    with torch.no_grad():
        conv.bias.zero_()
        ys = torch.cat([conv(x).transpose(0, 1).reshape(conv.out_channels, -1) for x in inputs], dim=1)
        conv.weight.mul_(out_std / ys.std().item())


def set_class_bias(conv, inputs, classes, per_image, threshold, images, centerness=None):
    """A classification bias so that about `per_image` anchor-class pairs per image pass `threshold`."""
    with torch.no_grad():
        conv.bias.zero_()
        ys = torch.cat([conv(x).reshape(x.shape[0], -1) for x in inputs], dim=1)
        k = min(per_image * images, ys.numel() - 1)
        top = ys.flatten().topk(k).values[-1].item()
        # score = sigmoid(logit) (RetinaNet) or sqrt(sigmoid(logit) * sigmoid(ctr)) with ctr ~ 0 (FCOS)
        need = threshold if centerness is None else threshold**2 / 0.5
        conv.bias.fill_(math.log(need / (1 - need)) - top)


def randomize(kind, det, images, candidates):
    measure_batchnorm(det, images)
    cls_in, reg_in = head_features(det, images)
    ch = det.head.classification_head
    rh = det.head.regression_head
    scale_conv(ch.cls_logits, cls_in, 1.5)
    if kind == "retinanet":
        set_class_bias(ch.cls_logits, cls_in, ch.num_classes, candidates, 0.05, len(images))
        # box deltas of about 0.2 (of the anchor's size), log-sizes likewise
        scale_conv(rh.bbox_reg, reg_in, 0.2)
    else:
        set_class_bias(ch.cls_logits, cls_in, ch.num_classes, candidates, 0.2, len(images), centerness=True)
        # distances to the box's sides in strides: ReLU(N(2, 1)), boxes about 4 strides wide
        scale_conv(rh.bbox_reg, reg_in, 1.0)
        rh.bbox_reg.bias.data.fill_(2.0)
        scale_conv(rh.bbox_ctrness, reg_in, 1.0)


def detections_of(det, images):
    """torchvision's own postprocess on the head outputs (image size = the input's)."""
    with torch.no_grad():
        feats = list(det.backbone(images).values())
        head = det.head(feats)
        il = ImageList(images, [tuple(images.shape[-2:])] * len(images))
        anchors = det.anchor_generator(il, feats)
        sizes = [f.shape[2] * f.shape[3] for f in feats]
        A = head["cls_logits"].shape[1] // sum(sizes)
        split = {k: list(v.split([s * A for s in sizes], dim=1)) for k, v in head.items()}
        anchors = [list(a.split([s * A for s in sizes])) for a in anchors]
        return det.postprocess_detections(split, anchors, il.image_sizes)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--classes", type=int, default=91)
    p.add_argument("--models", default="retinanet,fcos")
    p.add_argument("--images", help="folder of PNG/JPEG images for the BatchNorm statistics (random network)")
    p.add_argument("--calibration-images", type=int, default=32)
    p.add_argument("--candidates", type=int, default=200, help="anchor-class pairs per image above the threshold")
    p.add_argument("--weights-retinanet")
    p.add_argument("--weights-fcos")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    S = a.size
    for kind in a.models.split(","):
        torch.manual_seed(a.seed)
        if kind == "retinanet":
            det = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=a.classes)
            names = ["cls_logits", "bbox_regression"]
            weights = a.weights_retinanet
        elif kind == "fcos":
            det = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=a.classes)
            names = ["cls_logits", "bbox_regression", "bbox_ctrness"]
            weights = a.weights_fcos
        else:
            sys.exit(f"unknown model {kind} (retinanet, fcos)")
        if a.images:
            images = load_images(a.images, S, a.calibration_images)
        else:
            images = torch.randn(a.calibration_images, 3, S, S, generator=torch.Generator().manual_seed(a.seed))
        if weights:
            det.load_state_dict(torch.load(weights, map_location="cpu"))
            det.eval()
        else:
            randomize(kind, det, images, a.candidates)
        det.eval()
        found = detections_of(det, images[:4])
        print(
            f"{kind}: torchvision's postprocess on {len(found)} images: "
            + ", ".join(str(len(d["boxes"])) for d in found)
            + " detections",
            flush=True,
        )
        path = os.path.join(a.out, f"{kind}.onnx")
        net = Heads(det, names).eval()
        torch.onnx.export(
            net,
            images[:1],
            path,
            opset_version=13,
            input_names=["input"],
            output_names=names,
            dynamic_axes={"input": {0: "N"}, **{n: {0: "N"} for n in names}},
        )
        m = onnx.load(path)
        entry = m.metadata_props.add()
        entry.key = "spikeport.normalize"
        entry.value = '{"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}'
        onnx.save(m, path)
        shapes = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output]
        print(f"exported {path}: input [N, 3, {S}, {S}], outputs " + ", ".join(
            f"{n} {s}" for n, s in zip(names, shapes)), flush=True)


if __name__ == "__main__":
    main()
