import { expect } from 'vitest';
import { SerialShell } from './serial-shell.ts';

/** The numbers in a shell command's output (e.g. the guest's /tmp/count). */
export const numbers = (out: string) => out.trim().split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number);

/**
 * A counter the guest writes to /tmp/count once a second, read on its serial console: after a move, a crash or a
 * failover, the same guest kept running (its counter went on, no reboot) wherever it runs now. The console socket
 * belongs to the QEMU, so the console is released before a move and opened again on the host the guest runs on.
 */
export class ConsoleCounter {
  private opened: SerialShell | undefined;
  private last = 0;

  /** Starts the counter in the guest whose instance directory is `dir` and reads its first value. */
  async start(dir: string): Promise<void> {
    this.release();
    this.opened = await SerialShell.whenReady(dir, 120_000);
    await this.opened.run('(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done) &');
    await new Promise((r) => setTimeout(r, 2_500));
    this.last = numbers((await this.opened.run('cat /tmp/count')).output)[0]!;
    expect(this.last).toBeGreaterThan(0);
  }

  /** Reads the counter on the console of the guest in `dir` (opened again): it went on from the last reading. */
  async goesOn(dir: string): Promise<void> {
    this.release();
    this.opened = await SerialShell.open(dir);
    // It ticks once a second: a reading right after the previous one may see the same value.
    await new Promise((r) => setTimeout(r, 1_500));
    const [now] = numbers((await this.opened.run('cat /tmp/count')).output);
    expect(now).toBeGreaterThan(this.last);
    this.last = now!;
  }

  /** The console opened last (for other commands in the guest). */
  get shell(): SerialShell {
    if (this.opened === undefined) throw new Error('the console is not open');
    return this.opened;
  }

  release(): void {
    this.opened?.close();
    this.opened = undefined;
  }
}
