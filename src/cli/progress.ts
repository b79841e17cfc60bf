/** Where progress lines go (stderr). */
export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * Prints long work's transfer entries (label, line), the same in this process and through the daemon: off a
 * terminal a line each, on a terminal redrawn on one line (ended by the entry that says "done").
 */
export function transferLines(out: ProgressSink): (phase: string, detail: string) => void {
  if (out.isTTY !== true) return (phase, detail) => out.write(`${phase} ${detail}\n`);
  return (phase, detail) => out.write(`\r\x1b[K${phase} ${detail}${/ done$/.test(detail) ? '\n' : ''}`);
}
