#!/usr/bin/python3
"""Export the segmentation and video networks of the paper's Table 3 as spikeport converts them.

    /usr/bin/python3 tools/export_table3.py OUTDIR [--pretrained] [NAME ...]

    fcn_resnet50-coco400, deeplabv3_resnet50-coco400   3 × 400 × 400, 21 classes (COCO with VOC's)
    fcn_resnet50-voc256, deeplabv3_resnet50-voc256     3 × 256 × 256, 21 classes (Pascal VOC)
    mc3_18-kinetics                                    3 × 16 × 112 × 112, 400 classes (Kinetics-400)

Without --pretrained the weights are random (seeded, with random BatchNorm statistics), which is
what docs/table3.md runs on generated data; with it, torchvision's own weights are downloaded
(COCO_WITH_VOC_LABELS_V1 for the segmenters, KINETICS400_V1 for MC3-18; needs the internet). VOC
networks are trained by the user (torchvision's segmentation reference, --dataset voc_aug); load
such a checkpoint with --checkpoint FILE.pth and one NAME.

Segmenters export their "out" head only (logits at the input size: the final bilinear upsampling
is part of the graph); batch axis dynamic; opset 13. The ONNX metadata carries the input
normalisation (ImageNet's, Kinetics' for MC3-18) and MC3-18's frame rate (15), which spikeport
reads as defaults.
"""
import json
import os
import sys

import onnx
import torch
import torchvision

torch.manual_seed(0)
torch.set_num_threads(2)
S = torchvision.models.segmentation
V = torchvision.models.video

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
KINETICS = {"mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989]}


def segmenter(make):
    return lambda pretrained: make(weights="DEFAULT" if pretrained else None, weights_backbone=None,
                                   **({} if pretrained else {"aux_loss": False}))


MODELS = {
    "fcn_resnet50-coco400": (segmenter(S.fcn_resnet50), (1, 3, 400, 400), {"spikeport.normalize": IMAGENET}),
    "deeplabv3_resnet50-coco400": (segmenter(S.deeplabv3_resnet50), (1, 3, 400, 400), {"spikeport.normalize": IMAGENET}),
    "fcn_resnet50-voc256": (segmenter(S.fcn_resnet50), (1, 3, 256, 256), {"spikeport.normalize": IMAGENET}),
    "deeplabv3_resnet50-voc256": (segmenter(S.deeplabv3_resnet50), (1, 3, 256, 256), {"spikeport.normalize": IMAGENET}),
    "mc3_18-kinetics": (lambda pretrained: V.mc3_18(weights="DEFAULT" if pretrained else None), (1, 3, 16, 112, 112),
                        {"spikeport.normalize": KINETICS, "spikeport.frameRate": 15}),
}


class Segmentation(torch.nn.Module):
    """torchvision's segmenters return a dict; export its 'out'."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def flag(name):
    if name in sys.argv:
        sys.argv.remove(name)
        return True
    return False


def option(name):
    if name in sys.argv:
        i = sys.argv.index(name)
        value = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return value
    return None


pretrained = flag("--pretrained")
checkpoint = option("--checkpoint")
out = sys.argv[1] if len(sys.argv) > 1 else "out/table3"
only = set(sys.argv[2:])
unknown = only - set(MODELS)
if unknown:
    sys.exit(f"unknown model(s) {', '.join(sorted(unknown))}; known: {', '.join(MODELS)}")
if checkpoint and len(only) != 1:
    sys.exit("--checkpoint FILE.pth goes with exactly one NAME")
os.makedirs(out, exist_ok=True)

for name, (make, shape, metadata) in MODELS.items():
    if only and name not in only:
        continue
    net = make(pretrained)
    if checkpoint:
        # weights_only: a .pth is a pickle, and a pickle can run code.
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        loaded = net.load_state_dict(state.get("model", state), strict=False)
        # The reference trains with an auxiliary head that is not exported; anything else missing
        # or left over means the checkpoint is not this network's.
        extra = [k for k in loaded.unexpected_keys if not k.startswith("aux_classifier.")]
        if loaded.missing_keys or extra:
            wrong = (loaded.missing_keys or extra)[0]
            sys.exit(f"{checkpoint}: not a {name} checkpoint ({len(loaded.missing_keys)} weights missing, "
                     f"{len(extra)} unknown, e.g. {wrong})")
    elif not pretrained:
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    if "resnet50" in name:
        net = Segmentation(net)
    net.eval()
    path = os.path.join(out, f"{name}.onnx")
    torch.onnx.export(net, torch.rand(*shape), path, opset_version=13, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    model = onnx.load(path)
    onnx.helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    onnx.save(model, path)
    weights = "torchvision's weights" if pretrained else checkpoint or "random weights"
    print(f"exported {path} {tuple(shape)} ({weights})", flush=True)
