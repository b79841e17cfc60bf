/**
 * Does a busy tiny guest survive a live move under TCG? Each trial boots a fresh guest on host a (network
 * namespaces, as bench/migration.ts), starts a loop rewriting memory, moves it once to host b with virtnode's
 * migration engine (pre-copy, auto-converge, its defaults), then checks on the target's console that the guest
 * answers and its loop still runs (twice, 3 s apart) and looks for a kernel oops there. Counts survivors (no oops) per
 * variant: guest memory size, CPU model, guest kernel command line, workload.
 *
 * Why memory sizes matter: QEMU before 9.0 (here 7.2) loses writes made through a vCPU's TLB during a pre-copy
 * pass when it syncs the dirty bitmap of a RAM block in 64-page words (its fast path, taken when the block's
 * size is a multiple of 256 KiB), because that path does not reset the TLB's not-dirty flags (fixed upstream by
 * 03bfc2188f06, "physmem: Fix migration dirty bitmap coherency with TCG memory access"). A size that is not a
 * multiple of 256 KiB (1 GiB + 8 KiB) takes the page-by-page path, which does.
 *
 * Usage (root, in a private network namespace; VARIANTS from the table below, TRIALS per variant, interleaved):
 *   unshare --net -- bash -c 'ip link set lo up && TRIALS=4 VARIANTS=1g,1g+8k node bench/tcg-move-survival.ts'
 * Writes bench/results/tcg-move-survival.json (BENCH_RESULT=NAME: NAME.json).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { copyingBaseFetcher } from '../src/instances/migrate/base-fetch.ts';
import { buildOffer } from '../src/instances/migrate/offer.ts';
import { migrateOut } from '../src/instances/migrate/source.ts';
import { MigrationTarget } from '../src/instances/migrate/target.ts';
import { processStartTime } from '../src/lib/proc.ts';
import { programVersion } from '../src/host/programs.ts';
import { QEMU_BINARY, killQemu } from '../src/qemu/process.ts';
import { tcgRamPadKiB } from '../src/qemu/ram-pad.ts';
import { queryVersion, quit } from '../src/qmp/commands.ts';
import { SerialShell } from '../test/helpers/serial-shell.ts';
import { createTwoHosts, startSourceVm, tcgMoveSafeMiB } from '../test/helpers/two-hosts.ts';
import { writeResult } from './results.ts';

/** bench/migration.ts's busy loop (64 MiB through tmpfs by `cat`), sized by `mib`. */
const catLoop = (mib: number) =>
  `dd if=/dev/urandom of=/run/s1 bs=1M count=${mib / 2} 2>/dev/null; dd if=/dev/urandom of=/run/s2 bs=1M count=${mib / 2} 2>/dev/null; ` +
  "setsid sh -c 'while :; do cat /run/s1 /run/s2 > /run/busy; cat /run/s2 /run/s1 > /run/busy; done' </dev/null >/dev/null 2>&1 &";
/** The same through `dd` with 1 MiB blocks. */
const ddLoop = (mib: number) =>
  `dd if=/dev/urandom of=/run/s1 bs=1M count=${mib / 2} 2>/dev/null; dd if=/dev/urandom of=/run/s2 bs=1M count=${mib / 2} 2>/dev/null; ` +
  "setsid sh -c 'while :; do dd if=/run/s1 of=/run/busy bs=1M 2>/dev/null; dd if=/run/s2 of=/run/busy bs=1M 2>/dev/null; done' </dev/null >/dev/null 2>&1 &";
const LOOP_RUNS = { cat: 'ps | grep -q "[c]at /run/s"', dd: 'ps | grep -q "[d]d if=/run/s"' };

interface Variant {
  memoryMiB: number;
  /** The padding virtnode's own start chooses here (qemu/ram-pad.ts, this host's QEMU, TCG), carried by the offer. */
  virtnodePad?: boolean;
  cpuModel: string;
  append?: string;
  workload: 'cat' | 'dd';
  busyMiB: number;
}
const VARIANTS: Record<string, Variant> = {
  '1g': { memoryMiB: 1024, cpuModel: 'qemu64', workload: 'cat', busyMiB: 64 },
  '1g+8k': { memoryMiB: tcgMoveSafeMiB(1024), cpuModel: 'qemu64', workload: 'cat', busyMiB: 64 },
  '1g-virtnode': { memoryMiB: 1024, virtnodePad: true, cpuModel: 'qemu64', workload: 'cat', busyMiB: 64 },
  '128m': { memoryMiB: 128, cpuModel: 'qemu64', workload: 'cat', busyMiB: 32 },
  '128m+8k': { memoryMiB: tcgMoveSafeMiB(128), cpuModel: 'qemu64', workload: 'cat', busyMiB: 32 },
  '1g-pti': { memoryMiB: 1024, cpuModel: 'qemu64', append: 'pti=on', workload: 'cat', busyMiB: 64 },
  '1g-dd': { memoryMiB: 1024, cpuModel: 'qemu64', workload: 'dd', busyMiB: 64 },
  '1g-16m': { memoryMiB: 1024, cpuModel: 'qemu64', workload: 'cat', busyMiB: 16 },
};

const trials = Number(process.env['TRIALS'] ?? 4);
const names = (process.env['VARIANTS'] ?? '1g,1g+8k').split(',');
for (const n of names) if (VARIANTS[n] === undefined) throw new Error(`VARIANTS: unknown "${n}": use ${Object.keys(VARIANTS).join(', ')}`);

type Outcome = 'ok' | 'oops' | 'no answer' | 'loop gone' | 'move failed';
const OOPS = /Oops|BUG:|general protection|Kernel panic|segfault|exited with irqs disabled|invalid opcode/;

const installed = await programVersion(QEMU_BINARY);
const installedQemu = installed.state === 'ok' ? installed.version : '';
const hosts = createTwoHosts();
const results: Record<string, Array<{ outcome: Outcome; oops?: string; migrationMs?: number; bytesSent?: number; error?: string }>> = Object.fromEntries(names.map((n) => [n, []]));
const pids: number[] = [];
const killAll = async () => {
  for (const pid of pids.splice(0)) {
    const start = processStartTime(pid);
    if (start !== undefined) await killQemu({ pid, start }).catch(() => {});
  }
};
try {
  for (let t = 0; t < trials; t++) {
    for (const name of names) {
      const v = VARIANTS[name]!;
      const id = `${name.replace(/[^a-z0-9]/g, '')}-${t}`;
      const pad = { memoryPadKiB: v.virtnodePad === true ? tcgRamPadKiB({ accel: 'tcg', qemuVersion: installedQemu, hugepages: false }) : 0 };
      const vm = await startSourceVm(hosts.a, { name: id, memoryMiB: v.memoryMiB, ...pad, cpuModel: v.cpuModel, ...(v.append === undefined ? {} : { append: v.append }) });
      pids.push(vm.identity.pid);
      const record: (typeof results)[string][number] = { outcome: 'move failed' };
      try {
        const shell = await SerialShell.whenReady(vm.dir, 120_000);
        await shell.run((v.workload === 'cat' ? catLoop : ddLoop)(v.busyMiB));
        if ((await shell.run(LOOP_RUNS[v.workload])).status !== 0) throw new Error('the busy loop is not running');
        shell.close();
        await new Promise((r) => setTimeout(r, 1_000));
        const dir = join(hosts.b.stateDir, 'instances', id);
        const target = new MigrationTarget({ dir, listenHost: hosts.b.address, launcher: hosts.b.launcher, fetchBase: copyingBaseFetcher(join(hosts.b.stateDir, 'images')) });
        const offer = await buildOffer(vm.spec, { qemuVersion: (await queryVersion(vm.qmp)).qemu, transfers: {}, postcopy: false });
        const result = await migrateOut(vm.qmp, offer, target, {});
        pids.push(result.targetPid);
        await quit(vm.qmp).catch(() => {});
        vm.qmp.close();
        target.connection?.close();
        record.migrationMs = result.migrationMs;
        record.bytesSent = result.bytesSent;
        const there = await SerialShell.open(dir);
        try {
          let outcome: Outcome = 'ok';
          for (const wait of [0, 3_000]) {
            await new Promise((r) => setTimeout(r, wait));
            const r = await there.run(LOOP_RUNS[v.workload], 20_000).catch(() => undefined);
            if (r === undefined) outcome = 'no answer';
            else if (r.status !== 0) outcome = 'loop gone';
            if (outcome !== 'ok') break;
          }
          record.outcome = outcome;
        } finally {
          there.close();
        }
        const consoleText = readFileSync(join(dir, 'console.log'), 'utf8');
        const line = consoleText.split('\n').find((l) => OOPS.test(l));
        if (line !== undefined) {
          record.oops = line.trim();
          // Its loop may still run (another process oopsed): not a guest that survived whole.
          if (record.outcome === 'ok') record.outcome = 'oops';
        }
      } catch (e) {
        record.error = String(e).slice(0, 300);
      } finally {
        await killAll();
        vm.qmp.close();
        rmSync(vm.dir, { recursive: true, force: true });
      }
      results[name]!.push(record);
      console.log(`${name} #${t}: ${JSON.stringify(record)}`);
    }
  }
} finally {
  await killAll();
  hosts.remove();
}
const summary = Object.fromEntries(names.map((n) => [n, { ...VARIANTS[n], survived: results[n]!.filter((r) => r.outcome === 'ok').length, of: results[n]!.length }]));
console.log(JSON.stringify(summary, null, 2));
writeResult(process.env['BENCH_RESULT'] ?? 'tcg-move-survival', { trials, summary, results });
