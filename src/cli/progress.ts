/** Progress on stderr: a bar with rate and ETA on a terminal, a few plain lines otherwise. */
import cliProgress from 'cli-progress';
import type { Progress } from '../progress.js';

export type ProgressFn = (p: Progress) => void;

export function progressReporter(enabled: boolean): { report: ProgressFn; stop: () => void } {
  if (!enabled) return { report: () => {}, stop: () => {} };
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  let phase = '';
  let lastPct = -1;
  let started = 0;
  // Where the phase started (a resumed run starts with what its checkpoint holds): rates count from here.
  let from = 0;
  const stop = (): void => {
    bar?.stop();
    bar = null;
  };
  const report: ProgressFn = (p) => {
    if (p.phase !== phase) {
      stop();
      phase = p.phase;
      lastPct = -1;
      started = performance.now();
      from = p.done;
      if (tty) {
        bar = new cliProgress.SingleBar(
          {
            format: `${p.phase.padEnd(22)} [{bar}] {percentage}% | {value}/{total}${p.unit ? ` ${p.unit}` : ''} | {rate}/s | ETA {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            etaBuffer: 50,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.total, p.done, { rate: '0' });
      }
    }
    const secs = (performance.now() - started) / 1000;
    if (bar) {
      bar.update(p.done, { rate: secs > 0 ? ((p.done - from) / secs).toFixed(1) : '0' });
      if (p.done >= p.total) stop();
    } else {
      const pct = Math.floor((100 * p.done) / p.total);
      if (pct >= lastPct + 25 || p.done === p.total) {
        lastPct = pct;
        const eta = p.done > from ? (secs * (p.total - p.done)) / (p.done - from) : 0;
        process.stderr.write(
          `${p.phase}: ${p.done}/${p.total}${p.unit ? ` ${p.unit}` : ''} (${pct}%), ${secs.toFixed(1)} s, ETA ${eta.toFixed(0)} s\n`,
        );
      }
    }
  };
  return { report, stop };
}
