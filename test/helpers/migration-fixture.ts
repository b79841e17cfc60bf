import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyingBaseFetcher } from '../../src/instances/migrate/base-fetch.ts';
import { MigrationTarget } from '../../src/instances/migrate/target.ts';
import { killQemu } from '../../src/qemu/process.ts';
import { SerialShell } from './serial-shell.ts';
import { createTwoHosts, type SourceVm, startSourceVm, ticks, type TwoHosts } from './two-hosts.ts';

/** A loop in the guest that rewrites 2 MiB of tmpfs memory and prints a running counter, about 5 times a second. */
export const DIRTY_LOOP = '(i=0; while :; do i=$((i+1)); dd if=/dev/urandom of=/run/busy bs=1M count=2 conv=notrunc 2>/dev/null; echo "TICK $i end"; usleep 200000; done) &';

export const BOOT_TIMEOUT_MS = 90_000;

/**
 * Two hosts, a guest booted on the first, a migration target on the second, and everything a test made undone by
 * `cleanUp` (call it from afterEach), last made first.
 */
export class MigrationFixture {
  hosts: TwoHosts | undefined;
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  get twoHosts(): TwoHosts {
    this.hosts ??= createTwoHosts();
    return this.hosts;
  }

  onCleanUp(step: () => Promise<void> | void): void {
    this.cleanups.push(step);
  }

  async cleanUp(): Promise<void> {
    while (this.cleanups.length > 0) await this.cleanups.pop()!();
    this.hosts?.remove();
    this.hosts = undefined;
  }

  async bootSource(name: string, options: { memoryMiB?: number; memoryPadKiB?: number } = {}): Promise<{ vm: SourceVm; shell: SerialShell }> {
    const vm = await startSourceVm(this.twoHosts.a, { name, ...options });
    this.onCleanUp(() => vm.kill());
    const shell = await SerialShell.whenReady(vm.dir, BOOT_TIMEOUT_MS);
    this.onCleanUp(() => shell.close());
    return { vm, shell };
  }

  targetFor(name: string): MigrationTarget {
    const b = this.twoHosts.b;
    const target = new MigrationTarget({
      dir: join(b.stateDir, 'instances', name),
      listenHost: b.address,
      launcher: b.launcher,
      fetchBase: copyingBaseFetcher(join(b.stateDir, 'images')),
    });
    this.onCleanUp(async () => {
      const identity = target.process;
      target.connection?.close();
      if (identity !== undefined) await killQemu(identity).catch(() => {});
    });
    return target;
  }
}

/** Waits until the consoles together show `count` ticks; a stall reports each console's last lines. */
export async function waitForTicks(logs: string[], count: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = ticks(...logs);
    if (seen.length >= count) return seen;
    if (Date.now() > deadline) {
      const tails = logs.map((log) => `--- ${log}:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-600) : '(no file)'}`).join('\n');
      throw new Error(`only ${seen.length} of ${count} ticks within ${timeoutMs} ms\n${tails}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
