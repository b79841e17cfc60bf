import type { CallOptions } from '../api/endpoint.ts';
import { progressLineWriter, progressReporter, type ProgressOutput } from '../images/pull/progress.ts';

const DONE_LINE = / {2}done( {2}|$)/;

/**
 * How the CLI shows a transfer that the work reports (src/app/transfer-progress.ts), in this process or through a
 * daemon alike. Off a terminal: the work's own lines, one each 10%. On a terminal: one line redrawn in place from
 * the byte counts, with a bar and the rate since the call began, closed when the work reports its done line.
 */
export function transferOutput(out: ProgressOutput, label: string): Pick<CallOptions, 'onPhase' | 'onTransfer'> {
  if (out.isTTY !== true) return { onPhase: progressLineWriter(out) };
  const draw = progressReporter(out, label);
  const started = Date.now();
  let last: { bytes: number; total: number | undefined } | undefined;
  let finished = false;
  const report = (bytes: number, total: number | undefined, seconds: number, done: boolean, expectedSeconds?: number) => {
    const bytesPerSecond = seconds > 0 ? bytes / seconds : 0;
    // The work's own estimate (a live move's) over the rate so far, which knows nothing of rounds or zero pages.
    const etaSeconds = done ? undefined : (expectedSeconds ?? (total !== undefined && bytesPerSecond > 0 ? Math.max(0, total - bytes) / bytesPerSecond : undefined));
    draw({ received: bytes, total, resumedFrom: 0, bytesPerSecond, etaSeconds, done });
  };
  return {
    onTransfer: (bytes, total, expectedSeconds) => {
      if (finished) return;
      last = { bytes, total };
      report(bytes, total, (Date.now() - started) / 1000, false, expectedSeconds);
    },
    onPhase: (phase, detail, elapsedMs) => {
      if (finished || last === undefined || phase !== label || !DONE_LINE.test(detail)) return;
      finished = true;
      report(last.total ?? last.bytes, last.total, elapsedMs / 1000, true);
    },
  };
}
