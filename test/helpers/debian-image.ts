import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSeed, type SeedFiles } from '../../src/cloudinit/seed.ts';
import { run, type RunResult } from '../../src/exec/run.ts';

const DEFAULT_DIR = fileURLToPath(new URL('../../.cache/images', import.meta.url));

/** Byte offset of the root partition in the built image (sector 2048). */
export const DEBIAN_IMAGE_PARTITION_OFFSET_BYTES = 1024 * 1024;

/**
 * Path of the Debian 12 cloud image built by scripts/build-image.sh: `$VIRTNODE_IMAGE_DIR/debian-12.qcow2` (set by
 * scripts/env.sh to the machine-wide /var/cache/virtnode/images; `<repo>/.cache/images` when unset), a link to
 * the keyed image. Building needs the network, which tests
 * do not have, so a missing image is an error with the command to run, never a skip.
 */
export function debianImage(): string {
  const dir = process.env['VIRTNODE_IMAGE_DIR'] || DEFAULT_DIR;
  const link = join(dir, 'debian-12.qcow2');
  if (!existsSync(link)) {
    throw new Error(
      `Debian test image not built (missing ${link}): run ./scripts/build-image.sh (as root, with network; same VIRTNODE_IMAGE_DIR) before the tests`,
    );
  }
  return realpathSync(link);
}

export interface BootOptions {
  seedFormat: 'iso' | 'vfat';
  hostname: string;
  /** A `#cloud-config` document; `{{SSH_KEY}}` is replaced by the generated public key. */
  userData: string;
  networkConfig?: string;
  /** Grow the overlay beyond the image's size (growpart test). */
  overlaySizeBytes?: number;
  cloudInitDeadlineMs?: number;
}

export interface BootedGuest {
  /** Runs a command over SSH as the seed's first user (`vn`). */
  ssh(command: string, timeoutMs?: number): Promise<RunResult>;
  serial(): Promise<string>;
  /** Milliseconds since QEMU started: kernel banner, cloud-init finished, first SSH login. */
  timings: Record<string, number>;
  /** Kills QEMU and removes the scratch directory; safe to call twice or after a failed boot. */
  stop(): Promise<void>;
}

export const BOOT_USER = 'vn';
const SSH_DEADLINE_MS = 120_000;
const POLL_MS = 1_000;


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Firmware-boots the built image under TCG (SeaBIOS → EXTLINUX) on a qcow2 overlay with a NoCloud seed, waits for
 * cloud-init to finish (serial console) and for SSH (user-mode network, host port forward on loopback). Must run
 * inside the test suite's network namespace. On failure QEMU is killed and the scratch dir removed before throwing.
 */
export async function bootDebianImage(options: BootOptions): Promise<BootedGuest> {
  const image = debianImage();
  const dir = await mkdtemp(join(tmpdir(), 'virtnode-image-boot-'));
  const qemu = new AbortController();
  let qemuExit: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    qemu.abort();
    await qemuExit;
    await rm(dir, { recursive: true, force: true });
  };
  const key = join(dir, 'id_ed25519');
  const serialLog = join(dir, 'serial.log');
  const timings: Record<string, number> = {};
  let port = 0;
  const serial = (): Promise<string> => readFile(serialLog, 'utf8').catch(() => '');
  const ssh = (command: string, timeoutMs = 30_000): Promise<RunResult> =>
    run(
      [
        'ssh',
        '-o', 'StrictHostKeyChecking=no',
        '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'BatchMode=yes',
        '-o', 'ConnectTimeout=10',
        '-o', 'LogLevel=ERROR',
        '-i', key,
        '-p', String(port),
        `${BOOT_USER}@127.0.0.1`,
        command,
      ],
      { timeoutMs },
    );
  try {
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'virtnode-e2e', '-f', key], { timeoutMs: 10_000 });
    const publicKey = (await readFile(`${key}.pub`, 'utf8')).trim();
    const seed = join(dir, options.seedFormat === 'iso' ? 'seed.iso' : 'seed.img');
    const files: SeedFiles = {
      'meta-data': `instance-id: iid-${Date.now()}\nlocal-hostname: ${options.hostname}\n`,
      'user-data': options.userData.replaceAll('{{SSH_KEY}}', publicKey),
    };
    if (options.networkConfig !== undefined) files['network-config'] = options.networkConfig;
    await buildSeed(seed, files, { format: options.seedFormat });
    const overlay = join(dir, 'overlay.qcow2');
    await run(
      [
        'qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, overlay,
        ...(options.overlaySizeBytes === undefined ? [] : [String(options.overlaySizeBytes)]),
      ],
      { timeoutMs: 10_000 },
    );
    port = await freeLoopbackPort();
    const deadlineMs = options.cloudInitDeadlineMs ?? 300_000;
    const started = Date.now();
    let exited: unknown;
    qemuExit = run(
      [
        'qemu-system-x86_64',
        '-machine', 'q35',
        '-accel', 'tcg',
        '-m', '1024',
        '-smp', '2',
        '-nodefaults',
        '-no-user-config',
        '-display', 'none',
        '-drive', `file=${overlay},if=none,id=d0,format=qcow2`,
        '-device', 'virtio-blk-pci,drive=d0,bootindex=0',
        '-drive', `file=${seed},if=none,id=s0,format=raw,readonly=on`,
        '-device', 'virtio-blk-pci,drive=s0',
        '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`,
        '-device', 'virtio-net-pci,netdev=n0',
        '-chardev', `socket,id=s,path=${join(dir, 'serial.sock')},server=on,wait=off,logfile=${serialLog}`,
        '-serial', 'chardev:s',
      ],
      { signal: qemu.signal, timeoutMs: deadlineMs + SSH_DEADLINE_MS + 600_000 },
    ).then(
      (r) => (exited = { exited: r }),
      (e: unknown) => (exited = { error: String(e) }),
    );
    for (;;) {
      const log = await serial();
      if (timings['kernelMs'] === undefined && /Linux version/.test(log)) timings['kernelMs'] = Date.now() - started;
      if (/Cloud-init v\. \S+ finished at/.test(log)) break;
      if (exited !== undefined) throw new Error(`QEMU exited early: ${JSON.stringify(exited)}\n${log.slice(-3000)}`);
      if (Date.now() - started > deadlineMs) throw new Error(`cloud-init did not finish within ${deadlineMs} ms:\n${log.slice(-3000)}`);
      await sleep(POLL_MS);
    }
    timings['cloudInitDoneMs'] = Date.now() - started;
    const sshDeadline = Date.now() + SSH_DEADLINE_MS;
    for (;;) {
      try {
        await ssh('true');
        break;
      } catch (error) {
        if (Date.now() > sshDeadline) throw error;
        await sleep(2_000);
      }
    }
    timings['sshMs'] = Date.now() - started;
    return { ssh, serial, timings, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
