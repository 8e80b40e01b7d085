#!/usr/bin/python3
"""The same CLTB calibration and SNN simulation written plainly in PyTorch, for bench/torch-compare.ts.

Usage (bench/torch-compare.ts calls it; it writes the inputs):
    /usr/bin/python3 tools/torch_compare.py JOB.json

JOB.json: {"model": prepared ONNX file (BN folded, pools moved: the graph spikeport converts),
           "data": "mnist" | "fashion-mnist", "normalize": {"mean": [..], "std": [..]} | null,
           "threads": K, "batch": B, "calibSamples": N, "iterations": I, "stepSize": c,
           "thresholds": {"<site>": [θ per channel]} (spikeport's, for the simulation),
           "testSamples": M, "T": [..], "delays": [..] (one per T)}

Prints JSON: ANN inference time on the calibration samples, CLTB time and thresholds, SNN
simulation time and top-1 per T. Calibration uses the first N training samples in order, the
simulation the first M test samples, as spikeport does with shuffle off and --limit M.

The network is interpreted from the ONNX graph (weights from its initializers), so both sides
run the same weights and the same graph. Ops that depend only on the input are computed once
per batch (direct coding), as in spikeport.
"""
import json
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train import load  # noqa: E402  (the IDX readers of the training script)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Net:
    """An ONNX graph as a list of torch calls; neuron sites are handled by the caller."""

    def __init__(self, path):
        model = onnx.load(path)
        g = model.graph
        self.inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
        self.nodes = list(g.node)
        # Attributes parsed once: protobuf access in the step loop would dominate the time.
        self.attrs = {n.name: attrs(n) for n in self.nodes}
        self.input = g.input[0].name
        self.output = g.output[0].name
        self.site_names = {n.name for n in self.nodes if self.is_site(n)}
        self.sites = [n for n in self.nodes if n.name in self.site_names]
        varying = set()
        for n in self.nodes:
            if n.name in self.site_names or any(i in varying for i in n.input):
                varying.update(n.output)
        self.varying = varying

    def is_site(self, n):
        if n.op_type == "Relu":
            return True
        if n.op_type == "Clip":
            lo = self.value(n.input[1]) if len(n.input) > 1 and n.input[1] else attrs(n).get("min", None)  # once, at load
            return lo is not None and float(lo) == 0.0
        return False

    def value(self, name):
        return self.inits.get(name)

    def op(self, n, env):
        a = self.attrs[n.name]
        x = [env[i] if i in env else self.inits.get(i) for i in n.input]
        t = n.op_type
        if t == "Conv":
            k = len(x[1].shape) - 2
            pads = a.get("pads", [0] * 2 * k)
            conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[k]
            xi = x[0]
            if any(pads[i] != pads[i + k] for i in range(k)):
                pad = []
                for i in reversed(range(k)):
                    pad += [pads[i], pads[i + k]]
                xi, p = F.pad(xi, pad), 0
            else:
                p = tuple(pads[:k])
            return conv(xi, x[1], x[2] if len(x) > 2 else None, stride=tuple(a.get("strides", [1] * k)), padding=p,
                        dilation=tuple(a.get("dilations", [1] * k)), groups=a.get("group", 1))
        if t == "Gemm":
            A = x[0].t() if a.get("transA", 0) else x[0]
            B = x[1].t() if a.get("transB", 0) else x[1]
            y = a.get("alpha", 1.0) * (A @ B)
            return y + a.get("beta", 1.0) * x[2] if len(x) > 2 and x[2] is not None else y
        if t == "MatMul":
            return x[0] @ x[1]
        if t == "Add":
            return x[0] + x[1]
        if t == "Sub":
            return x[0] - x[1]
        if t == "Mul":
            return x[0] * x[1]
        if t == "Relu":
            return torch.relu(x[0])
        if t == "Clip":
            hi = x[2] if len(x) > 2 and x[2] is not None else a.get("max", None)
            return torch.clamp(x[0], 0.0, None if hi is None else float(hi))
        if t == "MaxPool":
            k = a["kernel_shape"]
            pads = a.get("pads", [0] * 2 * len(k))
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(k)]
            return pool(x[0], k, a.get("strides", k), tuple(pads[:len(k)]), ceil_mode=bool(a.get("ceil_mode", 0)))
        if t == "AveragePool":
            k = a["kernel_shape"]
            pads = a.get("pads", [0] * 2 * len(k))
            pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(k)]
            return pool(x[0], k, a.get("strides", k), tuple(pads[:len(k)]), count_include_pad=bool(a.get("count_include_pad", 0)))
        if t == "GlobalAveragePool":
            return x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)
        if t == "Flatten":
            ax = a.get("axis", 1)
            return x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
        if t == "Reshape":
            shape = [int(s) for s in x[1]]
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return x[0].reshape(shape)
        if t in ("Identity", "Dropout"):
            return x[0]
        if t == "Concat":
            return torch.cat(x, dim=a["axis"])
        raise SystemExit(f"torch_compare.py: op {t} is not interpreted")


def batches(x, size):
    for i in range(0, x.shape[0], size):
        yield x[i:i + size]


def prepare(x, normalize):
    if normalize:
        mean = torch.tensor(normalize["mean"]).view(1, -1, *([1] * (x.dim() - 2)))
        std = torch.tensor(normalize["std"]).view(1, -1, *([1] * (x.dim() - 2)))
        x = (x - mean) / std
    return x


def ann_forward(net, x):
    env = {net.input: x}
    for n in net.nodes:
        env[n.output[0]] = net.op(n, env)
    return env[net.output]


def cltb(net, xs, c):
    """θ ← θ + 2c·mean((x − θ)⁺) per channel at every site, one batch at a time; clip with the new θ."""
    theta = {}
    for x in xs:
        env = {net.input: x}
        for n in net.nodes:
            if n.name in net.site_names:
                v = env[n.input[0]]
                dims = [0] + list(range(2, v.dim()))
                shape = [1, -1] + [1] * (v.dim() - 2)
                th = theta.get(n.name, torch.zeros(v.shape[1]))
                th = th + 2 * c * torch.relu(v - th.view(shape)).mean(dim=dims)
                theta[n.name] = th
                env[n.output[0]] = torch.minimum(torch.relu(v), th.view(shape))
            else:
                env[n.output[0]] = net.op(n, env)
    # The delay estimate's extra pass (clip mode, first batch), as spikeport does.
    env = {net.input: xs[0]}
    for n in net.nodes:
        if n.name in net.site_names:
            v = env[n.input[0]]
            shape = [1, -1] + [1] * (v.dim() - 2)
            env[n.output[0]] = torch.minimum(torch.relu(v), theta[n.name].view(shape))
            torch.relu(v).mean(dim=[0] + list(range(2, v.dim())))
        else:
            env[n.output[0]] = net.op(n, env)
    return theta


def simulate(net, x, theta, T):
    """IF neurons (reset by subtraction, membrane from θ/2, stored as u = m − θ/2), accumulated max pooling;
    returns the readout of every step [T, n, classes]."""
    const = {net.input: x}
    for n in net.nodes:  # what depends only on the input: once
        if n.output[0] not in net.varying:
            const[n.output[0]] = net.op(n, const)
    state = {}
    out = []
    for _ in range(T):
        env = dict(const)
        for n in net.nodes:
            if n.output[0] not in net.varying:
                continue
            if n.name in net.site_names:
                v = env[n.input[0]]
                shape = [1, -1] + [1] * (v.dim() - 2)
                th = theta[n.name].view(shape)
                half = torch.where(th > 0, th / 2, torch.full_like(th, float("inf")))
                u = state.get(n.name)
                u1 = v if u is None else u + v
                s = torch.where(u1 >= half, th.expand_as(u1), torch.zeros_like(u1))
                state[n.name] = u1 - s
                env[n.output[0]] = s
            elif n.op_type == "MaxPool":
                acc = state.get(n.name + ".acc")
                acc = env[n.input[0]] if acc is None else acc + env[n.input[0]]
                state[n.name + ".acc"] = acc
                p = net.op(n, {n.input[0]: acc})
                prev = state.get(n.name + ".max")
                env[n.output[0]] = p if prev is None else p - prev
                state[n.name + ".max"] = p
            else:
                env[n.output[0]] = net.op(n, env)
        out.append(env[net.output])
    return torch.stack(out)


def main():
    job = json.load(open(sys.argv[1]))
    torch.set_num_threads(job["threads"])
    torch.set_grad_enabled(False)
    net = Net(job["model"])
    xtr, _ = load(job["data"], "train")
    xte, yte = load(job["data"], "test")
    calib = [prepare(b, job["normalize"]) for b in batches(xtr[:job["calibSamples"]], job["batch"])]
    res = {}

    ann_forward(net, calib[0])  # warm-up
    t0 = time.perf_counter()
    for b in calib:
        ann_forward(net, b)
    res["annSeconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    theta = cltb(net, calib, job["stepSize"])
    res["calibSeconds"] = time.perf_counter() - t0
    res["thresholds"] = {k: v.tolist() for k, v in theta.items()}

    given = {k: torch.tensor(v, dtype=torch.float32) for k, v in job["thresholds"].items()}
    Ts, delays = job["T"], job["delays"]
    Tmax = max(Ts)
    hits = np.zeros(len(Ts))
    M = job["testSamples"]
    t0 = time.perf_counter()
    for i in range(0, M, job["batch"]):
        xb = prepare(xte[i:min(i + job["batch"], M)], job["normalize"])
        steps = simulate(net, xb, given, Tmax)
        cum = torch.cat([torch.zeros_like(steps[:1]), steps.double().cumsum(0)])
        for j, (T, d) in enumerate(zip(Ts, delays)):
            avg = (cum[T] - cum[d]) / (T - d)
            hits[j] += (avg.argmax(1) == yte[i:i + xb.shape[0]]).sum().item()
    res["simSeconds"] = time.perf_counter() - t0
    res["top1"] = (hits / M).tolist()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
