import { progressReporter, type DownloadProgress } from '../images/pull/progress.ts';
import type { OperationContext } from './operations.ts';

/**
 * An operation's transfer progress (download, import, copy): the live bytes, and a progress entry (label, line)
 * each time the CLI off a terminal prints a line, so a CLI following the operation prints the same lines.
 */
export function transferProgress(ctx: OperationContext, label: string): (p: DownloadProgress) => void {
  const lines = progressReporter({ write: (text: string) => ctx.phase(label, text.slice(label.length + 1).replace(/\n$/, '')) }, label);
  return (p) => {
    ctx.transfer(p.received, p.total);
    lines(p);
  };
}
