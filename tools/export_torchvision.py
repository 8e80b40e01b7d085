#!/usr/bin/python3
"""Export torchvision's architectures with random weights (no downloads) for spikeport's
real-export check. Models are NOT committed; see bench/real-exports.ts.

    /usr/bin/python3 tools/export_torchvision.py OUTDIR

Every BatchNorm gets random statistics so that folding is exercised. Input sizes are small
where the architecture allows it (VGG-16-BN needs 224 for its 7x7 adaptive pool).
"""
import os
import sys

import torch
import torchvision

torch.manual_seed(0)
torch.set_num_threads(2)
out = sys.argv[1] if len(sys.argv) > 1 else "out/torchvision"
os.makedirs(out, exist_ok=True)
M = torchvision.models
V = torchvision.models.video
S = torchvision.models.segmentation

MODELS = [
    ("resnet18", lambda: M.resnet18(weights=None), (1, 3, 64, 64), 13),
    # ImageNet size, for the streamed image-folder benchmark (bench/imagenet-size.ts) and
    # the simulation-cost benchmark (bench/all.ts --imagenet).
    ("resnet18-224", lambda: M.resnet18(weights=None), (1, 3, 224, 224), 13),
    ("resnet34-224", lambda: M.resnet34(weights=None), (1, 3, 224, 224), 13),
    ("mobilenet_v2-224", lambda: M.mobilenet_v2(weights=None), (1, 3, 224, 224), 13),
    ("resnet18-opset11", lambda: M.resnet18(weights=None), (1, 3, 64, 64), 11),
    ("resnet18-opset17", lambda: M.resnet18(weights=None), (1, 3, 64, 64), 17),
    ("resnet34", lambda: M.resnet34(weights=None), (1, 3, 64, 64), 13),
    ("resnet50", lambda: M.resnet50(weights=None), (1, 3, 64, 64), 13),
    ("vgg16_bn", lambda: M.vgg16_bn(weights=None), (1, 3, 224, 224), 13),
    ("mobilenet_v2", lambda: M.mobilenet_v2(weights=None), (1, 3, 64, 64), 13),
    ("fcn_resnet50", lambda: S.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False), (1, 3, 64, 64), 13),
    ("deeplabv3_resnet50", lambda: S.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False), (1, 3, 64, 64), 13),
    # As users export them for segmentation (issue: the final Resize reads Shape(input)).
    ("fcn_resnet50-128", lambda: S.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False), (1, 3, 128, 128), 13),
    ("deeplabv3_resnet50-128", lambda: S.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False), (1, 3, 128, 128), 13),
    ("mc3_18", lambda: V.mc3_18(weights=None), (1, 3, 8, 56, 56), 13),
    ("r3d_18", lambda: V.r3d_18(weights=None), (1, 3, 8, 56, 56), 13),
    # Expected refusals: nonlinearities inside the spiking part.
    ("efficientnet_b0", lambda: M.efficientnet_b0(weights=None), (1, 3, 64, 64), 13),
    ("mobilenet_v3_small", lambda: M.mobilenet_v3_small(weights=None), (1, 3, 64, 64), 13),
    ("vit_b_16", lambda: M.vit_b_16(weights=None), (1, 3, 224, 224), 13),
]


class Segmentation(torch.nn.Module):
    """torchvision's segmenters return a dict; export its 'out'."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


only = set(sys.argv[2:])
for name, make, shape, opset in MODELS:
    if only and name not in only:
        continue
    net = make()
    if name.startswith(("fcn", "deeplab")):
        net = Segmentation(net)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            c = m.num_features
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    path = os.path.join(out, f"{name}.onnx")
    torch.onnx.export(net, torch.rand(*shape), path, opset_version=opset, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    print(f"exported {path} {tuple(shape)} opset {opset}", flush=True)
