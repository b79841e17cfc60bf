import { formatSize } from '../../lib/units.ts';

/** One progress report over a whole transfer: bytes already on disk from an earlier attempt count too. */
export interface DownloadProgress {
  /** Bytes of the file held so far, including any resumed part. */
  received: number;
  /** The whole file's size, when the server says. */
  total: number | undefined;
  /** Bytes that were already there when this transfer began (resume). */
  resumedFrom: number;
  /** Rate of this transfer, bytes per second. */
  bytesPerSecond: number;
  etaSeconds: number | undefined;
  done: boolean;
}

const BAR_WIDTH_CHARS = 24;
const TTY_REDRAW_INTERVAL_MS = 100;
const UNKNOWN_TOTAL_LINE_STEP_BYTES = 16 * 1024 * 1024;

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

export function percentOf(p: DownloadProgress): number | undefined {
  if (p.total === undefined || p.total === 0) return p.done ? 100 : undefined;
  return Math.min(100, Math.floor((p.received / p.total) * 100));
}

/** One line: percentage and bar (when the size is known), bytes, rate, ETA. */
export function formatProgress(p: DownloadProgress, options: { bar?: boolean } = {}): string {
  const percent = percentOf(p);
  const parts: string[] = [];
  if (percent !== undefined) {
    parts.push(`${String(percent).padStart(3)}%`);
    if (options.bar !== false) {
      const filled = Math.round((percent / 100) * BAR_WIDTH_CHARS);
      parts.push(`[${'#'.repeat(filled)}${' '.repeat(BAR_WIDTH_CHARS - filled)}]`);
    }
  }
  parts.push(p.total === undefined ? formatSize(p.received) : `${formatSize(p.received)} / ${formatSize(p.total)}`);
  parts.push(`${formatSize(Math.round(p.bytesPerSecond))}/s`);
  if (p.done) parts.push('done');
  else if (p.etaSeconds !== undefined) parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
  if (p.resumedFrom > 0) parts.push(`(resumed at ${formatSize(p.resumedFrom)})`);
  return parts.join('  ');
}

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * Renders progress for people: on a terminal one line redrawn in place (at most every 100 ms); otherwise
 * (logs, pipes) a plain line each time another 10% is done, so a log shows the transfer without flooding.
 */
export function progressReporter(out: ProgressOutput, label: string): (p: DownloadProgress) => void {
  let lastDraw = 0;
  let lastStep = -1;
  let lastBytesLine = 0;
  return (p) => {
    if (out.isTTY === true) {
      const now = Date.now();
      if (!p.done && now - lastDraw < TTY_REDRAW_INTERVAL_MS) return;
      lastDraw = now;
      out.write(`\r\x1b[K${label} ${formatProgress(p)}${p.done ? '\n' : ''}`);
      return;
    }
    const percent = percentOf(p);
    if (percent === undefined) {
      if (p.received - lastBytesLine < UNKNOWN_TOTAL_LINE_STEP_BYTES && !p.done) return;
      lastBytesLine = p.received;
    } else {
      const step = Math.floor(percent / 10);
      // 100% is shown once, by the final report (with "done" instead of an ETA).
      if (!p.done && (step === lastStep || percent === 100)) return;
      lastStep = step;
    }
    out.write(`${label} ${formatProgress(p, { bar: false })}\n`);
  };
}

/**
 * Prints progress that arrives as lines (label, line), such as the progress entries of an operation doing a
 * transfer: off a terminal as progressReporter prints them, on a terminal redrawn on one line.
 */
export function progressLineWriter(out: ProgressOutput): (label: string, line: string) => void {
  if (out.isTTY !== true) return (label, line) => out.write(`${label} ${line}\n`);
  return (label, line) => out.write(`\r\x1b[K${label} ${line}${/ {2}done( {2}|$)/.test(line) ? '\n' : ''}`);
}

/**
 * Turns "bytes done of a total" callbacks (copying, unpacking) into DownloadProgress reports with a rate and
 * an ETA; `finish` sends the final, done report.
 */
export function transferTracker(onProgress: (p: DownloadProgress) => void): {
  update: (done: number, total: number | undefined) => void;
  finish: () => void;
} {
  const started = Date.now();
  let last: { done: number; total: number | undefined } = { done: 0, total: undefined };
  const report = (done: number, total: number | undefined, finished: boolean) => {
    const seconds = (Date.now() - started) / 1000;
    const bytesPerSecond = seconds > 0 ? done / seconds : 0;
    const etaSeconds = total !== undefined && bytesPerSecond > 0 ? Math.max(0, total - done) / bytesPerSecond : undefined;
    onProgress({ received: done, total, resumedFrom: 0, bytesPerSecond, etaSeconds, done: finished });
  };
  return {
    update: (done, total) => {
      last = { done, total };
      report(done, total, false);
    },
    finish: () => report(last.total ?? last.done, last.total ?? last.done, true),
  };
}
