/**
 * What freezing per-sample normalisations (graph/norms.ts) costs the ANN itself: the ANN with
 * the frozen statistics against the original, on the same samples, before any spike runs. Per
 * output the relative L2 difference, and how far the task's answers agree: the same top-1
 * (classification, video), the same class per pixel (segmentation), or the detections scored
 * against the original's as ground truth (detection, mAP@[.50:.95]).
 */
import type { Graph } from '../graph/ir.js';
import { prefetchBatches, type Dataset } from '../data/dataset.js';
import type { PreparedModel } from '../model/prepare.js';
import { Session, type RuntimeOptions } from '../ort/session.js';
import { topK } from '../tasks/classification.js';
import { meanAveragePrecision, type Detection } from '../tasks/detection.js';
import { detectionHead } from '../tasks/heads.js';
import type { ModelOutputs, Task } from '../tasks/task.js';
import type { DetectionBox } from '../data/dataset.js';

export interface SubstituteCost {
  /** Samples compared. */
  readonly samples: number;
  /** Per model output: ‖substitute − original‖ / ‖original‖ over the samples. */
  readonly outputs: readonly { readonly name: string; readonly error: number }[];
  /** How far the task's answers agree (1 = the same), and what is measured; null when the outputs do not say. */
  readonly agreement: { readonly measure: string; readonly value: number } | null;
}

/** The model's outputs (graph outputs, in order) for a batch. */
async function outputsOf(
  s: Session,
  g: Graph,
  input: string,
  dims: readonly number[],
  x: Float32Array,
): Promise<ModelOutputs> {
  const names = g.outputs.map((o) => o.name);
  const out = await s.run({ [input]: { dims, data: x } }, names);
  return names.map((name) => ({ name, dims: out[name].dims, data: out[name].data }));
}

/** The frozen ANN (m.graph) against the original (m.original) on the samples `indices` of `data`. */
export async function substituteCost(
  m: PreparedModel,
  data: Dataset,
  indices: readonly number[],
  task: Task,
  opts: RuntimeOptions & { readonly batchSize: number },
): Promise<SubstituteCost> {
  if (!m.original) throw new Error('the model has no frozen normalisation');
  const original = await Session.create(m.original, opts);
  const frozen = await Session.create(m.graph, opts).catch(async (e: unknown) => {
    await original.release();
    throw e;
  });
  const names = m.graph.outputs.map((o) => o.name);
  const diff = names.map(() => 0);
  const norm = names.map(() => 0);
  let same = 0;
  let counted = 0;
  const truth: DetectionBox[] = [];
  const found: Detection[] = [];
  let classes = 0;
  let measure: string | null = null;
  try {
    const batches: number[][] = [];
    for (let k = 0; k < indices.length; k += opts.batchSize) batches.push(indices.slice(k, k + opts.batchSize));
    for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], m.normalize)) {
      const dims = [b.n, ...m.inputShape];
      const a = await outputsOf(original, m.original, m.inputName, dims, b.x);
      const f = await outputsOf(frozen, m.graph, m.inputName, dims, b.x);
      a.forEach((o, j) => {
        for (let e = 0; e < o.data.length; e++) {
          diff[j] += (f[j].data[e] - o.data[e]) ** 2;
          norm[j] += o.data[e] ** 2;
        }
      });
      if (task === 'detection') {
        const s = m.inputShape;
        let head;
        try {
          head = detectionHead(a, s[s.length - 2], s[s.length - 1]);
        } catch {
          continue; // outputs no decoder reads: the L2 differences only
        }
        measure = 'detections, mAP@[.50:.95] against the original ANN’s';
        classes = head.classes;
        for (const d of head.decode(a, b.indices))
          truth.push({ image: d.image, label: d.label, x: d.x, y: d.y, w: d.w, h: d.h });
        found.push(...head.decode(f, b.indices));
      } else if (a.length === 1) {
        const [o, p] = [a[0].data, f[0].data];
        const d = a[0].dims;
        if (task === 'segmentation' && d.length >= 3) {
          measure = 'pixels of the same class';
          const C = d[1];
          const plane = d.slice(2).reduce((x, y) => x * y, 1);
          for (let i = 0; i < b.n; i++) {
            for (let q = 0; q < plane; q++) {
              let [ba, bf] = [0, 0];
              for (let c = 1; c < C; c++) {
                const at = i * C * plane + c * plane + q;
                if (o[at] > o[i * C * plane + ba * plane + q]) ba = c;
                if (p[at] > p[i * C * plane + bf * plane + q]) bf = c;
              }
              same += ba === bf ? 1 : 0;
              counted++;
            }
          }
        } else if (task !== 'segmentation') {
          measure = 'samples with the same top-1';
          const per = o.length / b.n;
          for (let i = 0; i < b.n; i++) {
            same += topK(o, i * per, per, 1)[0] === topK(p, i * per, per, 1)[0] ? 1 : 0;
            counted++;
          }
        }
      }
    }
  } finally {
    await original.release();
    await frozen.release();
  }
  let agreement: SubstituteCost['agreement'] = null;
  if (measure && task === 'detection')
    agreement = { measure, value: meanAveragePrecision(found, truth, classes, Number.MAX_SAFE_INTEGER).map };
  else if (measure && counted > 0) agreement = { measure, value: same / counted };
  return {
    samples: indices.length,
    outputs: names.map((name, j) => ({ name, error: norm[j] > 0 ? Math.sqrt(diff[j] / norm[j]) : 0 })),
    agreement,
  };
}
