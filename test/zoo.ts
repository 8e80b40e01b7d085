/**
 * A generated model zoo: the architectures people convert, small, with seeded random weights,
 * built with the project's own ONNX builder (as torch.onnx.export writes them).
 */
import type { Graph } from '../src/graph/ir.js';
import { floatTensor, int64Tensor } from '../src/graph/ir.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { buildGraph, conv, gemm, maxpool, randn, uniform } from './helpers.js';

let seed = 5000;

export function bn(b: GraphBuilder, x: string, C: number): string {
  const s = (seed += 4);
  return b.op(
    'BatchNormalization',
    [
      x,
      b.constant('gamma', floatTensor([C], uniform(s, C, 0.6, 1.4))),
      b.constant('beta', floatTensor([C], randn(s + 1, C, 0.2))),
      b.constant('mean', floatTensor([C], randn(s + 2, C, 0.2))),
      b.constant('var', floatTensor([C], uniform(s + 3, C, 0.5, 1.5))),
    ],
    { epsilon: 1e-5 },
  );
}

const relu = (b: GraphBuilder, x: string): string => b.op('Relu', [x]);
const relu6 = (b: GraphBuilder, x: string): string => b.op('Clip', [x, b.scalar(0), b.scalar(6)]);
const flatten = (b: GraphBuilder, x: string): string => b.op('Flatten', [x], { axis: 1 });
const gap = (b: GraphBuilder, x: string): string => b.op('GlobalAveragePool', [x]);

function basicBlock(b: GraphBuilder, x: string, cin: number, cout: number, stride: number): string {
  let h = relu(b, bn(b, conv(b, x, cin, cout, 3, { stride, bias: false }), cout));
  h = bn(b, conv(b, h, cout, cout, 3, { bias: false }), cout);
  const short =
    stride !== 1 || cin !== cout ? bn(b, conv(b, x, cin, cout, 1, { stride, bias: false, pad: 0 }), cout) : x;
  return relu(b, b.op('Add', [h, short]));
}

/** ResNet-style: stem with max pool after the first ReLU, basic blocks, a downsampling shortcut. */
export function resnet(): Graph {
  return buildGraph([3, 16, 16], (b, x) => {
    let h = maxpool(b, relu(b, bn(b, conv(b, x, 3, 8, 3, { bias: false }), 8)));
    h = basicBlock(b, h, 8, 8, 1);
    h = basicBlock(b, h, 8, 16, 2);
    return gemm(b, flatten(b, gap(b, h)), 16, 10);
  });
}

function bottleneck(b: GraphBuilder, x: string, cin: number, mid: number, cout: number, stride: number): string {
  let h = relu(b, bn(b, conv(b, x, cin, mid, 1, { bias: false, pad: 0 }), mid));
  h = relu(b, bn(b, conv(b, h, mid, mid, 3, { stride, bias: false }), mid));
  h = bn(b, conv(b, h, mid, cout, 1, { bias: false, pad: 0 }), cout);
  const short =
    stride !== 1 || cin !== cout ? bn(b, conv(b, x, cin, cout, 1, { stride, bias: false, pad: 0 }), cout) : x;
  return relu(b, b.op('Add', [h, short]));
}

/** ResNet-50-style bottleneck blocks. */
export function bottleneckNet(): Graph {
  return buildGraph([3, 16, 16], (b, x) => {
    let h = relu(b, bn(b, conv(b, x, 3, 8, 3, { bias: false }), 8));
    h = bottleneck(b, h, 8, 4, 16, 1);
    h = bottleneck(b, h, 16, 8, 24, 2);
    return gemm(b, flatten(b, gap(b, h)), 24, 10);
  });
}

function invertedResidual(
  b: GraphBuilder,
  x: string,
  cin: number,
  cout: number,
  stride: number,
  expand: number,
): string {
  const mid = cin * expand;
  let h = relu6(b, bn(b, conv(b, x, cin, mid, 1, { bias: false, pad: 0 }), mid));
  h = relu6(b, bn(b, conv(b, h, mid, mid, 3, { stride, bias: false, group: mid }), mid));
  h = bn(b, conv(b, h, mid, cout, 1, { bias: false, pad: 0 }), cout);
  return stride === 1 && cin === cout ? b.op('Add', [h, x]) : h;
}

/** MobileNetV2-style: ReLU6, depthwise conv, inverted residuals without a neuron after the add. */
export function mobilenet(): Graph {
  return buildGraph([3, 16, 16], (b, x) => {
    let h = relu6(b, bn(b, conv(b, x, 3, 8, 3, { stride: 2, bias: false }), 8));
    h = invertedResidual(b, h, 8, 8, 1, 2);
    h = invertedResidual(b, h, 8, 12, 2, 3);
    h = invertedResidual(b, h, 12, 12, 1, 3);
    h = relu6(b, bn(b, conv(b, h, 12, 32, 1, { bias: false, pad: 0 }), 32));
    h = b.op('Dropout', [flatten(b, gap(b, h))]);
    return gemm(b, h, 32, 10);
  });
}

/** VGG-style with BN and max pooling after spiking layers. */
export function vgg(): Graph {
  return buildGraph([1, 16, 16], (b, x) => {
    let h = relu(b, bn(b, conv(b, x, 1, 8, 3), 8));
    h = maxpool(b, relu(b, bn(b, conv(b, h, 8, 8, 3), 8)));
    h = maxpool(b, relu(b, bn(b, conv(b, h, 8, 16, 3), 16)));
    h = relu(b, gemm(b, flatten(b, h), 16 * 16, 32));
    return gemm(b, h, 32, 10);
  });
}

/** U-Net/FCN-style: encoder with max pool, nearest and transposed-conv upsampling, skip Concat, per-pixel head. */
export function unet(): Graph {
  return buildGraph([1, 16, 16], (b, x) => {
    const e1 = relu(b, bn(b, conv(b, x, 1, 6, 3), 6));
    const e2 = relu(b, conv(b, maxpool(b, e1), 6, 8, 3));
    const up = b.op('Resize', [e2, '', b.constant('scales', floatTensor([4], [1, 1, 2, 2]))], { mode: 'nearest' });
    const upT = b.op(
      'ConvTranspose',
      [e2, b.constant('Wt', floatTensor([8, 4, 2, 2], randn(seed++, 8 * 4 * 4, 0.5)))],
      { kernel_shape: [2, 2], strides: [2, 2] },
    );
    const padded = b.op('Pad', [e1, b.constant('pads', int64Tensor([8], [0, 0, 0, 0, 0, 0, 0, 0]))]);
    const cat = b.op('Concat', [up, upT, padded], { axis: 1 });
    const d = relu(
      b,
      conv(b, b.op('AveragePool', [cat], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }), 18, 8, 3),
    );
    return conv(b, d, 8, 5, 1, { pad: 0 });
  });
}

/** 3-D conv video net: Conv3d + BN, MaxPool3d after a neuron, AvgPool3d, global pooling. */
export function video3d(): Graph {
  return buildGraph([1, 4, 8, 8], (b, x) => {
    const c3 = (inp: string, cin: number, cout: number): string =>
      b.op(
        'Conv',
        [
          inp,
          b.constant(
            'W3',
            floatTensor([cout, cin, 3, 3, 3], randn(seed++, cout * cin * 27, Math.sqrt(2 / (cin * 27)))),
          ),
          b.constant('B3', floatTensor([cout], randn(seed++, cout, 0.1))),
        ],
        { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] },
      );
    let h = relu(b, bn(b, c3(x, 1, 6), 6));
    h = b.op('MaxPool', [h], { kernel_shape: [1, 2, 2], strides: [1, 2, 2] });
    h = relu(b, c3(h, 6, 8));
    h = b.op('AveragePool', [h], { kernel_shape: [2, 2, 2], strides: [2, 2, 2] });
    return gemm(b, flatten(b, gap(b, h)), 8, 10);
  });
}

/** MatMul + Add layers (how exporters often write Linear), a Reshape instead of Flatten, a Conv1d. */
export function matmulNet(): Graph {
  return buildGraph([2, 16], (b, x) => {
    const c1 = b.op(
      'Conv',
      [
        x,
        b.constant('W1', floatTensor([4, 2, 3], randn(seed++, 24, 0.6))),
        b.constant('B1', floatTensor([4], randn(seed++, 4, 0.1))),
      ],
      { kernel_shape: [3], pads: [1, 1] },
    );
    let h = b.op('Reshape', [relu(b, c1), b.constant('shape', int64Tensor([2], [0, 64]))]);
    const lin = (inp: string, fin: number, fout: number): string =>
      b.op('Add', [
        b.op('MatMul', [
          inp,
          b.constant('Wm', floatTensor([fin, fout], randn(seed++, fin * fout, Math.sqrt(2 / fin)))),
        ]),
        b.constant('bm', floatTensor([fout], randn(seed++, fout, 0.1))),
      ]);
    h = relu(b, lin(h, 64, 24));
    return lin(h, 24, 6);
  });
}

/**
 * DeepLab-style ASPP: dilated convs in parallel and an image-pooling branch broadcast back with
 * Expand, its shape computed from a time-varying tensor (Shape → Gather → Unsqueeze → Concat: int64
 * arithmetic as torch.onnx exports `expand(-1, -1, H, W)`).
 */
export function aspp(): Graph {
  return buildGraph([1, 12, 12], (b, x) => {
    const dil = (inp: string, cin: number, cout: number, d: number): string =>
      b.op(
        'Conv',
        [
          inp,
          b.constant('Wd', floatTensor([cout, cin, 3, 3], randn(seed++, cout * cin * 9, Math.sqrt(2 / (cin * 9))))),
        ],
        { kernel_shape: [3, 3], pads: [d, d, d, d], dilations: [d, d] },
      );
    const h = relu(b, conv(b, x, 1, 6, 3));
    const branches = [relu(b, conv(b, h, 6, 4, 1, { pad: 0 })), relu(b, dil(h, 6, 4, 2)), relu(b, dil(h, 6, 4, 3))];
    const pooled = relu(b, conv(b, gap(b, h), 6, 4, 1, { pad: 0 }));
    const shape = b.op('Shape', [h]);
    const dim = (i: number): string =>
      b.op('Unsqueeze', [
        b.op('Gather', [shape, b.constant('i', int64Tensor([], [i]))], { axis: 0 }),
        b.constant('ax', int64Tensor([1], [0])),
      ]);
    const one = b.op('Unsqueeze', [b.constant('one', int64Tensor([], [1])), b.constant('ax0', int64Tensor([1], [0]))]); // a node on constants only, as exporters write it
    const target = b.op('Concat', [one, one, dim(2), dim(3)], { axis: 0 });
    const cat = b.op('Concat', [...branches, b.op('Expand', [pooled, target])], { axis: 1 });
    return conv(b, relu(b, conv(b, cat, 16, 8, 1, { pad: 0 })), 8, 5, 1, { pad: 0 });
  });
}

export const ZOO: Record<string, { graph: () => Graph; shape: number[] }> = {
  matmul: { graph: matmulNet, shape: [2, 16] },
  resnet: { graph: resnet, shape: [3, 16, 16] },
  bottleneck: { graph: bottleneckNet, shape: [3, 16, 16] },
  mobilenetv2: { graph: mobilenet, shape: [3, 16, 16] },
  vgg: { graph: vgg, shape: [1, 16, 16] },
  unet: { graph: unet, shape: [1, 16, 16] },
  video3d: { graph: video3d, shape: [1, 4, 8, 8] },
  aspp: { graph: aspp, shape: [1, 12, 12] },
};
