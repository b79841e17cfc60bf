/**
 * Benchmark: a cold launch of the Debian image to "SSH login works and cloud-init is done", side by side in one
 * run, interleaved:
 *   - virtnode: `virtnode launch` (the image's own kernel booted directly when one was read out at import);
 *   - by hand with firmware boot: qemu-img overlay + genisoimage seed + QEMU (SeaBIOS → the image's boot loader);
 *   - `virt-install --import --cloud-init` on a libvirt session daemon this bench starts itself (as `nobody`,
 *     so no host configuration is needed), the SSH port forwarded through user-mode networking.
 * Every guest gets the same vCPUs and memory; the by-hand and virt-install guests are polled over SSH with
 * `cloud-init status --wait`. JSON with medians and ratios, plus virtnode's phases.
 * Usage (as root, inside a network namespace): node bench/cold-boot.ts [runs] [cpus] [image.qcow2]
 * BENCH_BASELINE_IMAGE=other.qcow2 adds two contenders to the same run, interleaved: virtnode and virt-install
 * booting that image (an image built from the previous recipe: before/after of an image change). With
 * BENCH_VIRTNODE_ONLY=1 only the two virtnode contenders run: more rounds of an image's before/after in the same time.
 * BENCH_BASELINE=DIR (another checkout, built) makes that checkout's virtnode the baseline contender instead, booting
 * the same image: before/after of a change in virtnode itself (with BENCH_VIRTNODE_ONLY=1, only the two virtnodes).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freeLoopbackPort } from '../src/lib/ports.ts';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 1);
const cpus = Number(process.argv[3] ?? 1);
const image = realpathSync(process.argv[4] ?? join(process.env['VIRTNODE_IMAGE_DIR'] ?? '/var/cache/virtnode/images', 'debian-12.qcow2'));
const baselineImage = process.env['BENCH_BASELINE_IMAGE'] ? realpathSync(process.env['BENCH_BASELINE_IMAGE']) : undefined;
const virtnodeOnly = process.env['BENCH_VIRTNODE_ONLY'] === '1';
const baselineCheckout = process.env['BENCH_BASELINE'] ? realpathSync(process.env['BENCH_BASELINE']) : undefined;
/** The baseline contender: another image (booted by this checkout's virtnode) or another checkout's virtnode. */
const baseline = baselineCheckout !== undefined ? { image: 'debian-12', bin: join(baselineCheckout, 'bin', 'virtnode') } : baselineImage !== undefined ? { image: 'baseline' } : undefined;
const MEMORY_MIB = 1024;
const READY_TIMEOUT_MS = 15 * 60_000;
const NOBODY = 65534;
const median = (xs: number[]) => (xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * CPU seconds QEMU has used so far (user + system, from /proc). Under TCG a 1-vCPU boot is CPU-bound, so this is
 * the work a boot needs, whatever else the shared host runs at the same time (wall time is not).
 */
function qemuCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

interface Sample {
  wallMs: number;
  qemuCpuS: number;
  /** virtnode only: the TCP connections the guest's sshd took in this boot (its children), the launch's login included. */
  sshdConnections?: number;
}

/**
 * Each connection sshd takes is logged with its client's port ("Connection closed by 10.0.2.2 port 51234
 * [preauth]", "Accepted publickey for ... port 51236"): the distinct ports, read after the launch.
 */
async function sshdConnections(home: string, name: string, bin: string | undefined): Promise<number> {
  const log = await virtnode(home, ['exec', name, '--', 'sudo', '-n', 'journalctl', '-b', '-u', 'ssh.service', '-o', 'cat', '--no-pager'], bin === undefined ? {} : { bin });
  if (log.code !== 0) throw new Error(log.stderr);
  return new Set([...log.stdout.matchAll(/ (?:from|by) \S+ port (\d+)/g)].map((m) => m[1])).size;
}

function userData(publicKey: string): string {
  return `#cloud-config\nusers:\n  - name: bench\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [${publicKey}]\n`;
}

/** Polls `cloud-init status --wait` over SSH until it answers 0 (the guest is up, SSH works and cloud-init is done). */
async function waitCloudInit(port: number, key: string, started: number): Promise<void> {
  const ssh = ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', '-p', String(port), 'bench@127.0.0.1'];
  for (;;) {
    if (spawnSync('ssh', [...ssh, 'cloud-init', 'status', '--wait'], { stdio: 'ignore', timeout: READY_TIMEOUT_MS }).status === 0) return;
    if (performance.now() - started > READY_TIMEOUT_MS) throw new Error(`no SSH + cloud-init done on port ${port} within ${READY_TIMEOUT_MS} ms`);
    await sleep(1_000);
  }
}

async function byHandFirmware(dir: string, key: string, image: string): Promise<Sample> {
  const t0 = performance.now();
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, join(dir, 'disk.qcow2')]);
  writeFileSync(join(dir, 'meta-data'), `instance-id: i-${crypto.randomUUID()}\nlocal-hostname: byhand\n`);
  writeFileSync(join(dir, 'user-data'), userData(readFileSync(`${key}.pub`, 'utf8').trim()));
  execFileSync('genisoimage', ['-quiet', '-output', join(dir, 'seed.iso'), '-volid', 'cidata', '-joliet', '-rock', join(dir, 'user-data'), join(dir, 'meta-data')]);
  const port = await freeLoopbackPort();
  const qemu = spawn('qemu-system-x86_64', [
    '-machine', 'q35,accel=tcg', '-cpu', 'max', '-smp', String(cpus), '-m', `${MEMORY_MIB}M`, '-nodefaults', '-display', 'none', '-pidfile', join(dir, 'qemu.pid'),
    '-drive', `file=${join(dir, 'disk.qcow2')},if=virtio,format=qcow2`, '-drive', `file=${join(dir, 'seed.iso')},if=virtio,format=raw,readonly=on`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0',
    '-serial', `file:${join(dir, 'serial.log')}`,
  ], { stdio: 'ignore', detached: true });
  qemu.unref();
  try {
    await waitCloudInit(port, key, t0);
    return { wallMs: performance.now() - t0, qemuCpuS: qemuCpuSeconds(qemu.pid!) };
  } finally {
    qemu.kill('SIGKILL');
  }
}

/** A libvirt session daemon for `nobody`, in `dir` (its HOME and runtime directory); stopped by the returned function. */
async function startLibvirt(dir: string): Promise<{ env: NodeJS.ProcessEnv; stop: () => void }> {
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: join(dir, 'home'), XDG_RUNTIME_DIR: join(dir, 'run'), LANG: 'C.UTF-8' };
  mkdirSync(dir, { mode: 0o755 });
  for (const d of [env.HOME, env.XDG_RUNTIME_DIR]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chownSync(d, NOBODY, NOBODY);
  }
  const daemon = spawn('libvirtd', [], { env, uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'ignore', 'ignore'], detached: true });
  daemon.unref();
  for (let i = 0; i < 300; i++) {
    if (spawnSync('virsh', ['-c', 'qemu:///session', 'version'], { env, uid: NOBODY, gid: NOBODY, stdio: 'ignore' }).status === 0) {
      return { env, stop: () => daemon.kill('SIGTERM') };
    }
    await sleep(200);
  }
  daemon.kill('SIGKILL');
  throw new Error('libvirtd (session, as nobody) did not answer: is libvirt-daemon-driver-qemu installed? apt-get install libvirt-daemon libvirt-daemon-driver-qemu');
}

async function virtInstall(dir: string, key: string, name: string, libvirt: { env: NodeJS.ProcessEnv }, image: string): Promise<Sample> {
  const as = { env: libvirt.env, uid: NOBODY, gid: NOBODY };
  mkdirSync(dir, { recursive: true });
  chownSync(dir, NOBODY, NOBODY);
  const t0 = performance.now();
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, disk], as);
  writeFileSync(join(dir, 'meta-data'), `instance-id: i-${crypto.randomUUID()}\nlocal-hostname: ${name}\n`);
  writeFileSync(join(dir, 'user-data'), userData(readFileSync(`${key}.pub`, 'utf8').trim()));
  const port = await freeLoopbackPort();
  execFileSync('virt-install', [
    '--connect', 'qemu:///session', '--name', name, '--memory', String(MEMORY_MIB), '--vcpus', String(cpus), '--osinfo', 'debian11',
    '--import', '--disk', `path=${disk},format=qcow2,bus=virtio`,
    '--cloud-init', `user-data=${join(dir, 'user-data')},meta-data=${join(dir, 'meta-data')}`,
    // User-mode networking with the SSH forward (libvirt's own user networking forwards ports only through passt).
    // One argv word with "=": a separate value starting with "-" would be taken for an option.
    '--network', 'none', `--qemu-commandline=-netdev user,id=hn0,hostfwd=tcp:127.0.0.1:${port}-:22 -device virtio-net-pci,netdev=hn0,bus=pcie.0,addr=0x18`,
    '--graphics', 'none', '--serial', `file,path=${join(dir, 'serial.log')}`, '--noautoconsole', '--wait', '0',
  ], { ...as, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitCloudInit(port, key, t0);
    const wallMs = performance.now() - t0;
    const pid = Number(readFileSync(join(libvirt.env['XDG_RUNTIME_DIR']!, 'libvirt/qemu/run', `${name}.pid`), 'utf8').trim());
    return { wallMs, qemuCpuS: qemuCpuSeconds(pid) };
  } finally {
    spawnSync('virsh', ['-c', 'qemu:///session', 'destroy', name], { ...as, stdio: 'ignore' });
    spawnSync('virsh', ['-c', 'qemu:///session', 'undefine', name], { ...as, stdio: 'ignore' });
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-cold-'));
  chmodSync(root, 0o755); // nobody's libvirt reaches its own directory below
  const home = join(root, 'home');
  const key = join(root, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  let libvirt: { env: NodeJS.ProcessEnv; stop: () => void } | undefined;
  let libvirtDir: string | undefined;
  const samples = { virtnode: [] as Sample[], byHandFirmware: [] as Sample[], virtInstall: [] as Sample[], virtnodeBaseline: [] as Sample[], virtInstallBaseline: [] as Sample[] };
  const phases: Array<Array<{ atS: number; phase: string; detail: string }>> = [];
  let directBoot = false;
  try {
    // libvirt puts UNIX sockets several levels below HOME: a short path keeps them under 108 bytes.
    libvirtDir = mkdtempSync('/tmp/vl-');
    chmodSync(libvirtDir, 0o755);
    libvirt = await startLibvirt(join(libvirtDir, 'l'));
    for (const [file, name] of [[image, 'debian-12'], ...(baselineImage === undefined || baselineCheckout !== undefined ? [] : [[baselineImage, 'baseline']])] as const) {
      const imported = await virtnode(home, ['image', 'import', file, '--name', name]);
      if (imported.code !== 0) throw new Error(imported.stderr);
    }
    const launch = async (imageName: string, name: string, into: Sample[], bin?: string): Promise<string> => {
      const t0 = performance.now();
      const launched = await virtnode(home, ['launch', imageName, '--name', name, '--cpus', String(cpus), '--memory', `${MEMORY_MIB / 1024}G`], { timeoutMs: READY_TIMEOUT_MS, ...(bin === undefined ? {} : { bin }) });
      const wallMs = performance.now() - t0;
      if (launched.code !== 0) throw new Error(launched.stderr);
      const qemuCpuS = qemuCpuSeconds(Number(/booting\s+QEMU pid (\d+)/.exec(launched.stderr)?.[1]));
      into.push({ wallMs, qemuCpuS, sshdConnections: await sshdConnections(home, name, bin) });
      console.error(`virtnode${bin === undefined ? '' : ' baseline'} ${imageName}: ${JSON.stringify(into.at(-1))}`);
      await virtnode(home, ['delete', '--force', name]);
      return launched.stderr;
    };
    for (let i = 0; i < runs; i++) {
      const stderr = await launch('debian-12', `c${i}`, samples.virtnode);
      phases.push([...stderr.matchAll(/^\[\s*([\d.]+) s\] (\S+)\s+(.*)$/gm)].map((m) => ({ atS: Number(m[1]), phase: m[2]!, detail: m[3]! })));
      directBoot = /booted directly/.test(stderr);

      if (virtnodeOnly) {
        if (baseline !== undefined) await launch(baseline.image, `b${i}`, samples.virtnodeBaseline, baseline.bin);
        continue;
      }
      const handDir = join(root, `hand${i}`);
      mkdirSync(handDir);
      samples.byHandFirmware.push(await byHandFirmware(handDir, key, image));
      console.error(`by hand (firmware): ${JSON.stringify(samples.byHandFirmware.at(-1))}`);

      samples.virtInstall.push(await virtInstall(join(root, `vi${i}`), key, `vi${i}`, libvirt, image));
      console.error(`virt-install: ${JSON.stringify(samples.virtInstall.at(-1))}`);
      if (baseline !== undefined) await launch(baseline.image, `b${i}`, samples.virtnodeBaseline, baseline.bin);
      if (baselineImage !== undefined && baselineCheckout === undefined) {
        samples.virtInstallBaseline.push(await virtInstall(join(root, `vb${i}`), key, `vb${i}`, libvirt, baselineImage));
        console.error(`virt-install baseline: ${JSON.stringify(samples.virtInstallBaseline.at(-1))}`);
      }
    }
  } finally {
    libvirt?.stop();
    killQemusUnder(root);
    if (libvirtDir !== undefined) killQemusUnder(libvirtDir);
    await sleep(500);
    rmSync(root, { recursive: true, force: true });
    if (libvirtDir !== undefined) rmSync(libvirtDir, { recursive: true, force: true });
  }
  const of = (k: keyof typeof samples, f: 'wallMs' | 'qemuCpuS') => median(samples[k].map((x) => x[f]));
  const medians = (f: 'wallMs' | 'qemuCpuS') => ({
    virtnode: of('virtnode', f),
    byHandFirmware: of('byHandFirmware', f),
    virtInstall: of('virtInstall', f),
    ...(baseline === undefined ? {} : { virtnodeBaseline: of('virtnodeBaseline', f) }),
    ...(baselineImage === undefined || baselineCheckout !== undefined ? {} : { virtInstallBaseline: of('virtInstallBaseline', f) }),
  });
  const medianMs = medians('wallMs');
  const medianQemuCpuS = medians('qemuCpuS');
  const baselineRatios = (m: typeof medianMs) => ({
    ...(m.virtnodeBaseline === undefined ? {} : { virtnodeToVirtnodeBaseline: m.virtnode / m.virtnodeBaseline, virtnodeBaselineToVirtInstall: m.virtnodeBaseline / m.virtInstall }),
    ...(m.virtnodeBaseline === undefined || m.virtInstallBaseline === undefined
      ? {}
      : { virtnodeToVirtInstallBaseline: m.virtnode / m.virtInstallBaseline, virtnodeBaselineToVirtInstallBaseline: m.virtnodeBaseline / m.virtInstallBaseline }),
  });
  const result = {
    benchmark: `cold launch to SSH login + cloud-init done (Debian 12 image, TCG, ${cpus} vCPU, ${MEMORY_MIB} MiB)`,
    runs,
    cpus,
    image,
    ...(baselineImage === undefined || baselineCheckout !== undefined ? {} : { baselineImage }),
    ...(baselineCheckout === undefined ? {} : { baselineCheckout }),
    virtnodeDirectKernelBoot: directBoot,
    at: new Date().toISOString(),
    medianMs,
    medianQemuCpuS,
    ratio: { virtnodeToVirtInstall: medianMs.virtnode / medianMs.virtInstall, virtnodeToByHandFirmware: medianMs.virtnode / medianMs.byHandFirmware, ...baselineRatios(medianMs) },
    qemuCpuRatio: {
      virtnodeToVirtInstall: medianQemuCpuS.virtnode / medianQemuCpuS.virtInstall,
      virtnodeToByHandFirmware: medianQemuCpuS.virtnode / medianQemuCpuS.byHandFirmware,
      ...baselineRatios(medianQemuCpuS),
    },
    samples,
    virtnodePhases: phases,
    notes: 'goal: virtnodeToVirtInstall <= 0.5. qemuCpuS: CPU seconds QEMU used until cloud-init was done (the boot\'s work under TCG, robust to other load on a shared host; wall time is not). by hand and virt-install boot the image through SeaBIOS and its EXTLINUX; virtnode boots the kernel it read out of the image at import.',
  };
  writeResult(`cold-boot-${cpus}cpu`, result);
  console.log(JSON.stringify({ medianMs, medianQemuCpuS, ratio: result.ratio, qemuCpuRatio: result.qemuCpuRatio, virtnodeDirectKernelBoot: directBoot }, null, 2));
}

await main();
