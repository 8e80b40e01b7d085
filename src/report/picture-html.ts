/**
 * The record's pictures as HTML (no scripts): segmentation masks as palette PNGs (VOC's colour
 * map, 255 = ignore in its light grey), detections as SVG boxes over the image, misclassified
 * images as a labelled grid. Everything is drawn in the model's input pixels, as stored.
 */
import { encodePng } from '../data/png.js';
import {
  expandRuns,
  runClasses,
  type PictureBox,
  type PicturePrediction,
  type Pictures,
  type PictureSample,
} from '../evaluate/pictures.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Pascal VOC's colour map: class i's bits spread over the high bits of R, G and B (0 black, 255 light grey). */
export function vocPalette(): Uint8Array {
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    let c = i;
    let [r, g, b] = [0, 0, 0];
    for (let j = 0; j < 8; j++) {
      r |= (c & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    out.set([r, g, b], 3 * i);
  }
  return out;
}

const PALETTE = vocPalette();

/** Box colours by class (bright, distinct on dark and light images). */
const BOX_COLOURS = [
  '#ff3b30',
  '#34c759',
  '#0a84ff',
  '#ffcc00',
  '#af52de',
  '#ff9500',
  '#5ac8fa',
  '#ff2d55',
  '#a2845e',
  '#00c7be',
];

function colour(label: number): string {
  return BOX_COLOURS[((label % BOX_COLOURS.length) + BOX_COLOURS.length) % BOX_COLOURS.length];
}

function className(p: Pictures, label: number): string {
  return p.classes?.[label] ?? String(label);
}

function hex(rgb: ArrayLike<number>): string {
  return `#${Array.from(rgb, (v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** A mask as a palette PNG data URI. */
function maskUri(p: Pictures, runs: string): string {
  const w = p.maskWidth ?? p.width;
  const h = p.maskHeight ?? p.height;
  const png = encodePng({ width: w, height: h, channels: 1, data: expandRuns(runs, w * h), palette: PALETTE });
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** One image's mIoU: the mean IoU over the classes in its truth or prediction, ignored pixels left out (as the data set's, on one image). */
function imageMiou(p: Pictures, pred: string, truth: string): number | null {
  const size = (p.maskWidth ?? p.width) * (p.maskHeight ?? p.height);
  const a = expandRuns(pred, size);
  const t = expandRuns(truth, size);
  const inter = new Float64Array(256);
  const union = new Float64Array(256);
  for (let i = 0; i < size; i++) {
    if (t[i] === 255) continue;
    if (a[i] === t[i]) {
      inter[t[i]]++;
      union[t[i]]++;
    } else {
      union[t[i]]++;
      union[a[i]]++;
    }
  }
  let sum = 0;
  let classes = 0;
  for (let c = 0; c < 256; c++) {
    if (union[c] === 0) continue;
    sum += inter[c] / union[c];
    classes++;
  }
  return classes ? sum / classes : null;
}

/** Width of a picture in the table: as large as fits the page's 1000 px, at most 168. */
function cellWidth(columns: number): number {
  return Math.min(168, Math.floor(940 / columns) - 8);
}

function imageTag(src: string, p: Pictures, alt: string, size: number): string {
  const h = Math.round((size * p.height) / p.width);
  return `<img class="pic" src="${src}" width="${size}" height="${h}" alt="${esc(alt)}">`;
}

function boxesSvg(p: Pictures, image: string, boxes: readonly PictureBox[], alt: string, size: number): string {
  const { width: W, height: H } = p;
  const font = Math.max(W, H) / 13;
  const items = boxes
    .map((b) => {
      const c = b.crowd ? '#bbbbbb' : colour(b.label);
      const text = `${className(p, b.label)}${b.crowd ? ' (crowd)' : ''}${b.score !== undefined ? ` ${b.score.toFixed(2)}` : ''}`;
      const tw = text.length * font * 0.6 + font * 0.4;
      // The label sits above the box, or inside it at the top edge of the image.
      const ty = b.y - font * 1.15 >= 0 ? b.y - font * 1.15 : b.y;
      return (
        `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="${c}" stroke-width="2" vector-effect="non-scaling-stroke"${b.crowd ? ' stroke-dasharray="4 3"' : ''}/>` +
        `<rect x="${b.x}" y="${ty}" width="${tw}" height="${font * 1.15}" fill="${c}" opacity="0.85"/>` +
        `<text x="${b.x + font * 0.2}" y="${ty + font * 0.9}" font-size="${font}" fill="#000">${esc(text)}</text>`
      );
    })
    .join('');
  const h = Math.round((size * H) / W);
  return (
    `<svg class="pic" role="img" aria-label="${esc(alt)}" width="${size}" height="${h}" viewBox="0 0 ${W} ${H}" overflow="hidden" font-family="system-ui, sans-serif">` +
    `<image href="${image}" x="0" y="0" width="${W}" height="${H}" preserveAspectRatio="none" style="image-rendering: pixelated"/>${items}</svg>`
  );
}

function cell(inner: string, caption: string): string {
  return `<td><figure class="cell">${inner}<figcaption>${caption}</figcaption></figure></td>`;
}

function denseCell(p: Pictures, s: PictureSample, pred: PicturePrediction | null, what: string, size: number): string {
  if (!pred) return '<td class="none">–</td>';
  if (p.task === 'segmentation') {
    const miou = pred !== s.truth && pred.mask && s.truth.mask ? imageMiou(p, pred.mask, s.truth.mask) : null;
    return cell(
      imageTag(maskUri(p, pred.mask ?? ''), p, `${what} mask of sample ${s.index}`, size),
      miou === null ? '&nbsp;' : `mIoU ${(100 * miou).toFixed(1)} %`,
    );
  }
  const boxes = pred.boxes ?? [];
  return cell(
    boxesSvg(p, s.image, boxes, `${what} boxes of sample ${s.index}`, size),
    `${boxes.filter((b) => !b.crowd).length} box${boxes.length === 1 ? '' : 'es'}`,
  );
}

function windowLabel(w: { T: number; delay: number }): string {
  return `SNN, T = ${w.T}${w.delay > 0 ? ` <span class="muted">(steps ${w.delay + 1}–${w.T})</span>` : ''}`;
}

/** Segmentation and detection: one row per sample: image, ground truth, ANN, SNN at each window. */
function denseHtml(p: Pictures): string {
  const hasAnn = p.samples.some((s) => s.ann);
  const head = ['image', 'ground truth', ...(hasAnn ? ['ANN'] : []), ...p.windows.map(windowLabel)];
  const size = cellWidth(head.length);
  const rows = p.samples.map((s) => {
    const image = cell(imageTag(s.image, p, `test sample ${s.index}`, size), `sample ${s.index}`);
    return (
      `<tr>${image}${denseCell(p, s, s.truth, 'ground truth', size)}${hasAnn ? denseCell(p, s, s.ann, 'ANN', size) : ''}` +
      `${p.windows.map((w, i) => denseCell(p, s, s.snn[i] ?? null, `SNN at T = ${w.T}`, size)).join('')}</tr>`
    );
  });
  return `<div class="pics"><table class="pics"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('\n')}</tbody></table></div>${legend(p)}`;
}

/** The classes that appear in the pictures, with their colours. */
function legend(p: Pictures): string {
  const seen = new Set<number>();
  for (const s of p.samples) {
    for (const pred of [s.truth, ...(s.ann ? [s.ann] : []), ...s.snn]) {
      if (pred.mask) for (const c of runClasses(pred.mask)) seen.add(c);
      for (const b of pred.boxes ?? []) if (!b.crowd) seen.add(b.label);
    }
  }
  const items = [...seen]
    .sort((a, b) => a - b)
    .map((c) => {
      const swatch = p.task === 'segmentation' ? hex(PALETTE.subarray(3 * c, 3 * c + 3)) : colour(c);
      const name = p.task === 'segmentation' && c === 255 ? 'ignore' : className(p, c);
      return `<span class="key"><span class="swatch" style="background:${swatch}"></span>${esc(name)}</span>`;
    });
  return items.length ? `<p class="legend">${items.join(' ')}</p>` : '';
}

/** Classification, video: the misclassified images, labelled. */
function gridHtml(p: Pictures): string {
  const cards = p.samples.map((s) => {
    const truth = s.truth.label ?? -1;
    const snn = s.snn[0]?.label ?? -1;
    const ann = s.ann?.label;
    const annLine =
      ann === undefined ? '' : `<br>ANN <b class="${ann === truth ? 'ok' : 'bad'}">${esc(className(p, ann))}</b>`;
    const side = 96;
    const h = Math.round((side * p.height) / p.width);
    return (
      `<figure class="card"><img class="pic" src="${s.image}" width="${side}" height="${h}" alt="test sample ${s.index}">` +
      `<figcaption>#${s.index}<br>true <b>${esc(className(p, truth))}</b><br>SNN <b class="bad">${esc(className(p, snn))}</b>${annLine}</figcaption></figure>`
    );
  });
  return `<div class="grid">${cards.join('\n')}</div>`;
}

/** The pictures' HTML. */
export function picturesHtml(p: Pictures): string {
  if (p.samples.length === 0) return '';
  if (p.task === 'classification' || p.task === 'video') return gridHtml(p);
  return denseHtml(p);
}

/** What the pictures show, in words (the HTML and the Markdown say the same). */
export function picturesText(p: Pictures): string[] {
  const names = p.classes ? ` Classes: ${p.classes.join(', ')}.` : '';
  if (p.task === 'classification' || p.task === 'video') {
    const w = p.windows[0];
    const checked = p.checked ?? 0;
    const wrong = p.misclassified ?? 0;
    return [
      `Misclassified at T = ${w.T} (readout over steps ${w.delay + 1}..${w.T}): ${wrong} of ${checked} samples (${checked ? ((100 * wrong) / checked).toFixed(2) : '–'} %)` +
        `${wrong > p.samples.length ? `; the first ${p.samples.length} in data order` : ''}, with the true class and the SNN's prediction${p.samples.some((s) => s.ann) ? " (and the ANN's)" : ''}` +
        `${p.task === 'video' ? '; each clip shown by its first frame' : ''}.${names}`,
    ];
  }
  const crowds = p.samples.some((s) => s.truth.boxes?.some((b) => b.crowd));
  const what =
    p.task === 'segmentation'
      ? 'masks (each pixel coloured by its class; VOC colours, ignored pixels light grey)'
      : `boxes (score ≥ ${p.minScore ?? 0}, labelled with class and score${crowds ? '; crowd regions of the ground truth dashed' : ''})`;
  return [
    `${p.samples.length} test images with the SNN's ${what} at ${p.windows.map((w) => `T = ${w.T}`).join(', ')}, next to the ground truth${p.samples.some((s) => s.ann) ? ' and the ANN' : ''}. Drawn in the model's input pixels.${names}`,
  ];
}
