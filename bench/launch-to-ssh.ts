/**
 * Benchmark: launch of the default Debian image to "SSH login works and cloud-init is done", virtnode against
 * the same job by hand (qemu-img overlay + genisoimage seed + qemu, polling SSH). Also the control plane alone:
 * command start to QEMU running with its seed (virtnode's `booting` phase). Interleaved runs; JSON with medians
 * and ratios. Usage (as root, inside a network namespace): node bench/launch-to-ssh.ts [runs]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freeLoopbackPort } from '../src/lib/ports.ts';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 3);
const image = realpathSync(join(process.env['VIRTNODE_IMAGE_DIR'] ?? '/var/cache/virtnode/images', 'debian-12.qcow2'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function byHand(dir: string, key: string): Promise<number> {
  const t0 = performance.now();
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, join(dir, 'disk.qcow2')]);
  const seedDir = join(dir, 'seed');
  mkdirSync(seedDir);
  writeFileSync(join(seedDir, 'meta-data'), `instance-id: i-${crypto.randomUUID()}\nlocal-hostname: byhand\n`);
  writeFileSync(join(seedDir, 'user-data'), `#cloud-config\nusers:\n  - name: bench\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [${readFileSync(`${key}.pub`, 'utf8').trim()}]\n`);
  execFileSync('genisoimage', ['-quiet', '-output', join(dir, 'seed.iso'), '-volid', 'cidata', '-joliet', '-rock', join(seedDir, 'user-data'), join(seedDir, 'meta-data')]);
  const port = await freeLoopbackPort();
  const qemu = spawn('qemu-system-x86_64', [
    '-machine', 'q35,accel=tcg', '-cpu', 'max', '-smp', '1', '-m', '1024M', '-nodefaults', '-display', 'none', '-pidfile', join(dir, 'qemu.pid'),
    '-drive', `file=${join(dir, 'disk.qcow2')},if=virtio,format=qcow2`, '-drive', `file=${join(dir, 'seed.iso')},if=virtio,format=raw,readonly=on`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0',
    '-serial', `file:${join(dir, 'serial.log')}`,
  ], { stdio: 'ignore', detached: true });
  qemu.unref();
  const ssh = ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', '-p', String(port), 'bench@127.0.0.1'];
  for (;;) {
    if (spawnSync('ssh', [...ssh, 'cloud-init', 'status', '--wait'], { stdio: 'ignore', timeout: 600_000 }).status === 0) break;
    await sleep(1_000);
  }
  const elapsed = performance.now() - t0;
  qemu.kill('SIGKILL');
  return elapsed;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-launch-'));
  const home = join(root, 'home');
  const key = join(root, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const imported = await virtnode(home, ['image', 'import', image, '--name', 'debian-12']);
  if (imported.code !== 0) throw new Error(imported.stderr);
  const hand: number[] = [];
  const total: number[] = [];
  const controlPlane: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = join(root, `hand${i}`);
    mkdirSync(dir);
    hand.push(await byHand(dir, key));
    const t0 = performance.now();
    const r = await virtnode(home, ['launch', 'debian-12', '--name', `b${i}`, '--cpus', '1', '--memory', '1G'], { timeoutMs: 900_000 });
    total.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(r.stderr);
    const booting = /\[\s*([\d.]+) s\] booting/.exec(r.stderr);
    if (booting) controlPlane.push(Number(booting[1]) * 1000);
    await virtnode(home, ['delete', '--force', `b${i}`]);
  }
  killQemusUnder(root);
  rmSync(root, { recursive: true, force: true });
  const result = {
    benchmark: 'launch to SSH login + cloud-init done (Debian 12 image, TCG, 1 vCPU, 1 GiB)',
    runs,
    at: new Date().toISOString(),
    medianMs: { byHand: median(hand), virtnodeLaunch: median(total), virtnodeControlPlane: median(controlPlane) },
    ratio: { virtnodeToByHand: median(total) / median(hand) },
    samplesMs: { byHand: hand, virtnodeLaunch: total, virtnodeControlPlane: controlPlane },
    notes: 'controlPlane: from the launch process start to QEMU running with the seed attached (the "booting" phase, as the CLI reports it; excludes Node start-up).',
  };
  writeResult('launch-to-ssh', result);
  console.log(JSON.stringify({ medianMs: result.medianMs, ratio: result.ratio }, null, 2));
}

await main();
