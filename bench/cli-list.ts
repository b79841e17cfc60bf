/**
 * Benchmark: `virtnode list` of 1,000 defined instances as the user runs it, whole processes (bin/virtnode, the
 * bundled CLI), through a running daemon and in-process (VIRTNODE_NO_DAEMON=1), interleaved in one run with:
 * - `virtnode --version`: the CLI's start alone;
 * - the floors: Node's own start (`node -e 0`, the binary bin/virtnode runs), the same rows read from the state
 *   database by the sqlite3 CLI (no Node at all), and the daemon's answer alone (`curl --unix-socket`).
 * Reports medians (wall), mean CPU, ratios, and whether the daemon path is under the 150 ms target.
 * Writes bench/results/cli-list.json. Usage (as root, in a network namespace): node bench/cli-list.ts [runs=15] [instances=1000]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VIRTNODE_BIN } from '../test/helpers/cli.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { testGuest } from '../test/helpers/test-guest.ts';
import { cpuMsOf, median, type ProcessRun, round, runTimed } from './whole-process.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 15);
const count = Number(process.argv[3] ?? 1000);
const TARGET_MS = 150;
const guest = testGuest();

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-bench-list-'));
  const daemon = await startDaemon(home);
  try {
    const names = Array.from({ length: count }, (_, i) => `vm-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 8) {
      await Promise.all(
        names.slice(i, i + 8).map((name) => daemon.api.request('POST', '/instances', { name, memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline })),
      );
    }
    const env = { ...process.env, VIRTNODE_HOME: home };
    const db = join(home, 'virtnode.db');
    const modes: Record<string, { argv: string[]; env?: NodeJS.ProcessEnv; daemon?: boolean }> = {
      listThroughDaemon: { argv: [VIRTNODE_BIN, 'list'], env, daemon: true },
      listInProcess: { argv: [VIRTNODE_BIN, 'list'], env: { ...env, VIRTNODE_NO_DAEMON: '1' } },
      cliVersion: { argv: [VIRTNODE_BIN, '--version'], env },
      nodeStart: { argv: [process.execPath, '-e', '0'] },
      sqlite3Rows: { argv: ['sqlite3', '-readonly', db, 'SELECT i.name, i.state, i.spec, n.mac FROM instances i LEFT JOIN nics n ON n.instance = i.name ORDER BY i.name'] },
      daemonAnswerCurl: { argv: ['curl', '-sf', '--unix-socket', daemon.socket, 'http://localhost/instances'], daemon: true },
    };

    // Both CLI modes print the same table, one line per instance.
    const viaDaemon = runTimed(modes['listThroughDaemon']!.argv, { env: modes['listThroughDaemon']!.env! });
    const local = runTimed(modes['listInProcess']!.argv, { env: modes['listInProcess']!.env! });
    if (viaDaemon.code !== 0 || viaDaemon.stdout !== local.stdout || viaDaemon.stdout.trim().split('\n').length !== count + 1) {
      throw new Error(`list output differs or is short (daemon ${viaDaemon.code}: ${viaDaemon.stderr}; local ${local.code}: ${local.stderr})`);
    }

    const samples: Record<string, ProcessRun[]> = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
    const daemonCpuMs: Record<string, number> = {};
    const order = Object.keys(modes);
    for (let i = -2; i < runs; i++) {
      // Interleaved, each round starting one mode further, so no mode always runs right after the same one.
      for (let k = 0; k < order.length; k++) {
        const mode = order[(k + Math.max(i, 0)) % order.length]!;
        const { argv, env: modeEnv, daemon: usesDaemon } = modes[mode]!;
        const daemonCpu0 = usesDaemon ? cpuMsOf(daemon.child.pid!) : 0;
        const run = runTimed(argv, modeEnv === undefined ? {} : { env: modeEnv });
        if (run.code !== 0) throw new Error(`${mode}: exit ${run.code}: ${run.stderr}`);
        if (i < 0) continue; // warm-up (compile cache, page cache)
        samples[mode]!.push(run);
        if (usesDaemon) daemonCpuMs[mode] = (daemonCpuMs[mode] ?? 0) + cpuMsOf(daemon.child.pid!) - daemonCpu0;
      }
    }

    const wall = (m: string) => median(samples[m]!.map((r) => r.wallMs));
    const cpu = (m: string) => samples[m]!.reduce((sum, r) => sum + r.cpuMs, 0) / samples[m]!.length;
    const result = {
      benchmark: 'cli-list',
      date: new Date().toISOString(),
      host: { load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) },
      instances: count,
      runs,
      medianWallMs: Object.fromEntries(order.map((m) => [m, round(wall(m))])),
      meanCpuMs: Object.fromEntries(order.map((m) => [m, round(cpu(m))])),
      daemonMeanCpuMsPerCall: Object.fromEntries(Object.entries(daemonCpuMs).map(([m, ms]) => [m, round(ms / runs)])),
      ratio: {
        listThroughDaemonToNodeStart: round(wall('listThroughDaemon') / wall('nodeStart'), 2),
        listInProcessToNodeStart: round(wall('listInProcess') / wall('nodeStart'), 2),
        listThroughDaemonToSqlite3: round(wall('listThroughDaemon') / wall('sqlite3Rows'), 2),
        listThroughDaemonToDaemonAnswer: round(wall('listThroughDaemon') / wall('daemonAnswerCurl'), 2),
        listThroughDaemonToInProcess: round(wall('listThroughDaemon') / wall('listInProcess'), 2),
        cpuListThroughDaemonToNodeStart: round(cpu('listThroughDaemon') / cpu('nodeStart'), 2),
      },
      target: { listThroughDaemonMs: TARGET_MS, met: wall('listThroughDaemon') < TARGET_MS },
      samplesWallMs: Object.fromEntries(order.map((m) => [m, samples[m]!.map((r) => round(r.wallMs))])),
      notes:
        'Whole processes, spawned one at a time, interleaved. Wall: median. CPU: mean user+system of the process (10 ms ticks, averaged). ' +
        'listThroughDaemon also costs the daemon daemonMeanCpuMsPerCall; nodeStart is the Node binary bin/virtnode runs; ' +
        'sqlite3Rows reads the same rows (instances with their NICs) from the state database with the sqlite3 CLI; ' +
        'daemonAnswerCurl is GET /instances on the daemon socket, without the CLI.',
    };
    writeResult('cli-list', result);
    const { samplesWallMs: _samples, ...summary } = result;
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await daemon.stop('SIGTERM');
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
