/**
 * Benchmark: the launch control plane, `virtnode launch IMAGE --no-wait` (linked-clone disk, identity with SSH
 * host keys, NoCloud seed, QEMU started and running) of the default Debian image, as whole CLI processes through
 * a running daemon and in-process (VIRTNODE_NO_DAEMON=1), against the same QEMU work by hand in the same run,
 * interleaved: `qemu-img create -b` overlay, meta-data and user-data written, a cidata seed by genisoimage, QEMU
 * spawned paused and driven over QMP to running (capabilities, cont). Two floors: `byHand` starts a minimal QEMU
 * (disk, seed, user network, as the issue measured it); `byHandSameQemu` starts QEMU with the very argv virtnode
 * gives it (its consoles, guest agent channel, hotplug ports, rng, balloon ...), so the difference is virtnode's
 * own work. Target: through the daemon within 1.5x of by hand. Also Node's own start (`node -e 0`), which every
 * CLI call pays and the floors do not, and virtnode's phases as it reports them.
 * Writes bench/results/launch-no-wait.json.
 * Usage (as root, in a network namespace): node bench/launch-no-wait.ts [runs=7]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freeLoopbackPort } from '../src/lib/ports.ts';
import { killQemusUnder, VIRTNODE_BIN, virtnode } from '../test/helpers/cli.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { median, round, runTimed } from './whole-process.ts';
import { qmpStartByHand } from './qmp-by-hand.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 7);
const TARGET_RATIO = 1.5;
const image = realpathSync(join(process.env['VIRTNODE_IMAGE_DIR'] ?? '/var/cache/virtnode/images', 'debian-12.qcow2'));

function run(argv: string[], env?: NodeJS.ProcessEnv): void {
  const r = runTimed(argv, env === undefined ? {} : { env });
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr}`);
}

/**
 * The floor: the same work with the tools themselves, from nothing to QEMU running with disk and seed. `qemuArgv`
 * (virtnode's, with DIR and PORT for the directory and the SSH port) or a minimal QEMU.
 */
async function byHand(dir: string, publicKey: string, qemuArgv?: string[]): Promise<number> {
  const t0 = performance.now();
  run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, join(dir, 'disk.qcow2')]);
  const seedDir = join(dir, 'seed');
  mkdirSync(seedDir);
  writeFileSync(join(seedDir, 'meta-data'), `instance-id: i-${crypto.randomUUID()}\nlocal-hostname: byhand\n`);
  writeFileSync(join(seedDir, 'user-data'), `#cloud-config\nusers:\n  - name: bench\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [${publicKey}]\n`);
  run(['genisoimage', '-quiet', '-output', join(dir, 'seed.iso'), '-volid', 'cidata', '-joliet', '-rock', join(seedDir, 'user-data'), join(seedDir, 'meta-data')]);
  const qmp = join(dir, 'qmp.sock');
  const port = await freeLoopbackPort();
  const argv = qemuArgv?.map((a) => a.replaceAll('DIR', dir).replaceAll('PORT', String(port)));
  const qemu = spawn(
    'qemu-system-x86_64',
    argv?.slice(1) ?? [
      '-machine', 'q35,accel=tcg', '-cpu', 'max', '-smp', '1', '-m', '1024M', '-nodefaults', '-display', 'none', '-S',
      '-qmp', `unix:${qmp},server=on,wait=off`, '-pidfile', join(dir, 'qemu.pid'),
      '-drive', `file=${join(dir, 'disk.qcow2')},if=virtio,format=qcow2`, '-drive', `file=${join(dir, 'seed.iso')},if=virtio,format=raw,readonly=on`,
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0', '-serial', `file:${join(dir, 'serial.log')}`,
    ],
    { stdio: 'ignore', detached: true },
  );
  qemu.unref();
  await qmpStartByHand(qmp, 'running');
  const elapsed = performance.now() - t0;
  qemu.kill('SIGKILL');
  return elapsed;
}

/** `[  0.3 s] seed  ...` lines: each phase's time since the start of the launch, in ms. */
function phases(stderr: string): Record<string, number> {
  return Object.fromEntries([...stderr.matchAll(/^\[\s*([\d.]+) s\] (\S+)/gm)].map((m) => [m[2]!, Number(m[1]) * 1000]));
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-launch-'));
  const home = join(root, 'home');
  mkdirSync(home);
  const key = join(root, 'id_ed25519');
  run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const publicKey = readFileSync(`${key}.pub`, 'utf8').trim();
  const imported = await virtnode(home, ['image', 'import', image, '--name', 'debian-12']);
  if (imported.code !== 0) throw new Error(imported.stderr);
  const daemon = await startDaemon(home);
  const env = { ...process.env, VIRTNODE_HOME: home };
  const samples = { throughDaemon: [] as number[], inProcess: [] as number[], byHand: [] as number[], byHandSameQemu: [] as number[], nodeStart: [] as number[] };
  const cpu = { throughDaemon: [] as number[], inProcess: [] as number[] };
  const reported: Record<'throughDaemon' | 'inProcess', Array<Record<string, number>>> = { throughDaemon: [], inProcess: [] };
  try {
    const launchOnce = (mode: 'throughDaemon' | 'inProcess', name: string) => {
      const r = runTimed([VIRTNODE_BIN, 'launch', 'debian-12', '--name', name, '--cpus', '1', '--memory', '1G', '--no-wait'], {
        env: mode === 'inProcess' ? { ...env, VIRTNODE_NO_DAEMON: '1' } : env,
      });
      if (r.code !== 0) throw new Error(`launch (${mode}): exit ${r.code}: ${r.stderr}`);
      return r;
    };
    // Warm-up, not counted: the client key is made once per state directory, caches fill.
    let virtnodeQemu: string[] = [];
    for (const mode of ['throughDaemon', 'inProcess'] as const) {
      const name = `warm-${mode.toLowerCase()}`;
      launchOnce(mode, name);
      // virtnode's QEMU command line, for the second floor: its instance directory and SSH port made DIR and PORT.
      const { pid } = JSON.parse(runTimed([VIRTNODE_BIN, 'info', name, '--format', 'json'], { env }).stdout) as { pid: number };
      virtnodeQemu = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1)
        .map((a) => a.replaceAll(join(home, 'instances', name, 'disk0.qcow2'), 'DIR/disk.qcow2').replaceAll(join(home, 'instances', name), 'DIR').replace(/tcp:127\.0\.0\.1:\d+-:22/, 'tcp:127.0.0.1:PORT-:22'));
      run([VIRTNODE_BIN, 'delete', '--force', name], env);
    }
    for (const qemuArgv of [undefined, virtnodeQemu]) {
      const warmDir = mkdtempSync(join(root, 'hand-warm-'));
      await byHand(warmDir, publicKey, qemuArgv);
    }

    const order = ['byHand', 'throughDaemon', 'byHandSameQemu', 'inProcess', 'nodeStart'] as const;
    for (let i = 0; i < runs; i++) {
      for (let k = 0; k < order.length; k++) {
        const mode = order[(i + k) % order.length]!;
        if (mode === 'byHand' || mode === 'byHandSameQemu') {
          const dir = mkdtempSync(join(root, `hand${i}-`));
          samples[mode].push(await byHand(dir, publicKey, mode === 'byHandSameQemu' ? virtnodeQemu : undefined));
        } else if (mode === 'nodeStart') {
          samples.nodeStart.push(runTimed([process.execPath, '-e', '0']).wallMs);
        } else {
          const name = `b${i}-${mode === 'inProcess' ? 'loc' : 'dmn'}`;
          const r = launchOnce(mode, name);
          samples[mode].push(r.wallMs);
          cpu[mode].push(r.cpuMs);
          reported[mode].push(phases(r.stderr));
          const del = runTimed([VIRTNODE_BIN, 'delete', '--force', name], { env });
          if (del.code !== 0) throw new Error(`delete ${name}: ${del.stderr}`);
        }
      }
    }
  } finally {
    await daemon.stop('SIGTERM');
    killQemusUnder(root);
    rmSync(root, { recursive: true, force: true });
  }

  const m = (xs: number[]) => round(median(xs));
  const phaseMedians = (mode: 'throughDaemon' | 'inProcess') =>
    Object.fromEntries(Object.keys(reported[mode][0] ?? {}).map((p) => [p, m(reported[mode].map((r) => r[p] ?? Number.NaN))]));
  const result = {
    benchmark: 'launch --no-wait (Debian 12 image, TCG, 1 vCPU, 1 GiB): the control plane',
    date: new Date().toISOString(),
    host: { load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) },
    runs,
    medianWallMs: Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, m(xs)])),
    meanCpuMs: Object.fromEntries(Object.entries(cpu).map(([k, xs]) => [k, round(xs.reduce((a, b) => a + b, 0) / xs.length)])),
    ratio: {
      throughDaemonToByHand: round(median(samples.throughDaemon) / median(samples.byHand), 2),
      inProcessToByHand: round(median(samples.inProcess) / median(samples.byHand), 2),
      throughDaemonWithoutNodeStartToByHand: round((median(samples.throughDaemon) - median(samples.nodeStart)) / median(samples.byHand), 2),
      throughDaemonToByHandSameQemu: round(median(samples.throughDaemon) / median(samples.byHandSameQemu), 2),
      inProcessToByHandSameQemu: round(median(samples.inProcess) / median(samples.byHandSameQemu), 2),
    },
    target: {
      throughDaemonToByHand: TARGET_RATIO,
      met: median(samples.throughDaemon) / median(samples.byHand) <= TARGET_RATIO,
      metAgainstSameQemu: median(samples.throughDaemon) / median(samples.byHandSameQemu) <= TARGET_RATIO,
    },
    phasesMedianMs: { throughDaemon: phaseMedians('throughDaemon'), inProcess: phaseMedians('inProcess') },
    samplesWallMs: Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, xs.map((x) => round(x))])),
    notes:
      'Whole CLI processes (spawn to exit) against the by-hand steps timed inside this process (no Node start: nodeStart is what any Node CLI pays on top). ' +
      'Runs interleaved, order rotating. phasesMedianMs: time since the launch began when virtnode reported each phase (0.1 s resolution, as printed). ' +
      'Instances are deleted between runs (not timed).',
  };
  writeResult('launch-no-wait', result);
  const { samplesWallMs: _s, ...summary } = result;
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

await main();
