import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { resolveAccelerator } from '../host/index.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { makeScratchDir } from '../lib/scratch.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { DiskFormat } from '../instances/model.ts';
import { escapeOptionValue } from '../qemu/argv.ts';
import { GuestAgent } from '../qmp/guest-agent.ts';
import type { SealMethod } from './model.ts';
import { changesOf, readApplianceConsole } from './seal-output.ts';
import { applianceDir, repoFile } from './paths.ts';

const APPLIANCE_BUILD_TIMEOUT_MS = 5 * 60_000;
const APPLIANCE_RUN_TIMEOUT_MS = 10 * 60_000;
const APPLIANCE_MEMORY_MIB = 256;
const AGENT_CONNECT_TIMEOUT_MS = 5_000;
const AGENT_SEAL_TIMEOUT_MS = 120_000;

export interface SealResult {
  method: SealMethod;
  /** The root filesystem sealed (`/dev/vda1 ext4` offline, `/` through the agent); undefined when none was found. */
  root: string | undefined;
  /** What changed, one line each (`removed /etc/ssh/ssh_host_ed25519_key`). */
  changes: string[];
  /** Said to the user: which method, and anything unusual. */
  summary: string;
}

/** The sealing script: the same file runs in the guest (through the agent) and in the appliance. */
export function sealScript(): string {
  return readFileSync(repoFile('src/templates/seal.sh'), 'utf8');
}

/** The appliance's QEMU, its console written to `consoleFile`. */
function applianceArgv(dir: string, accel: string, consoleFile: string, disk: { path: string; format: DiskFormat }): string[] {
  const kernel = existsSync(join(dir, 'vmlinux')) ? join(dir, 'vmlinux') : join(dir, 'vmlinuz');
  return [
    'qemu-system-x86_64',
    '-machine', `q35,accel=${accel}`,
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-m', `${APPLIANCE_MEMORY_MIB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-chardev', `file,id=console,path=${escapeOptionValue(consoleFile)}`, '-serial', 'chardev:console',
    '-kernel', kernel,
    '-initrd', join(dir, 'initramfs.img'),
    '-append', readFileSync(join(dir, 'cmdline'), 'utf8').trim(),
    '-drive', `file=${escapeOptionValue(disk.path)},format=${disk.format},if=virtio`,
  ];
}

/**
 * Seals a disk that no VM is using, offline: boots the sealing appliance (a Debian kernel and a busybox
 * initramfs, built on first use by scripts/build-seal-appliance.sh) with the disk as its only drive; it mounts
 * the root filesystem, runs the sealing script and powers off, reporting on its serial console. No nbd module
 * or libguestfs is needed, the disk is never converted, and QEMU's image locking keeps any other QEMU off it.
 */
export async function sealOffline(paths: StatePaths, disk: { path: string; format: DiskFormat }, options: { signal?: AbortSignal } = {}): Promise<SealResult> {
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const dir = applianceDir(paths);
  await run(['bash', repoFile('scripts/build-seal-appliance.sh'), dir], { timeoutMs: APPLIANCE_BUILD_TIMEOUT_MS, ...signal }).catch((e: unknown) => {
    throw new VirtnodeError('COMMAND_FAILED', `could not build the sealing appliance in ${dir}`, {
      cause: e,
      hint: 'it needs linux-image-amd64, busybox-static, kmod and cpio: run scripts/setup.sh',
    });
  });
  const { accel } = await resolveAccelerator('auto', { cacheDir: paths.hostCache, ...signal });
  // The console goes to a file, not to a pipe: QEMU's UART drops a byte it could not write after a few tries,
  // which a pipe whose reader is slow on a loaded host can cause, and a file never refuses a write.
  // A scratch directory is recorded: the reconcile after a crash removes it.
  const scratch = makeScratchDir(paths.root, tmpdir(), 'virtnode-seal-');
  let consoleText: string;
  try {
    const consoleFile = join(scratch.path, 'console.log');
    await run(applianceArgv(dir, accel, consoleFile, disk), { timeoutMs: APPLIANCE_RUN_TIMEOUT_MS, diesWithVirtnode: true, ...signal, onSpawn: () => failpoint('seal.appliance-running') });
    consoleText = await readFile(consoleFile, 'utf8');
  } finally {
    scratch.remove();
  }
  const outcome = readApplianceConsole(consoleText);
  if (outcome.kind === 'no-root') {
    return { method: 'offline', root: undefined, changes: [], summary: 'offline (sealing appliance): the disk holds no Linux root filesystem, nothing to seal' };
  }
  if (outcome.kind === 'failed') {
    throw new VirtnodeError('COMMAND_FAILED', `sealing ${disk.path} offline failed: ${outcome.error ?? 'the appliance ended without a result'}`, {
      hint: `its console said: ${outcome.tail.join(' | ')}`,
    });
  }
  const { root, changes } = outcome;
  return { method: 'offline', root, changes, summary: `offline (sealing appliance, root ${root}): ${changes.length} changes` };
}

/** Where the guest keeps the sealing script until it powers off (/run is a tmpfs). */
const GUEST_SCRIPT = '/run/virtnode-seal.sh';

/**
 * Runs the sealing script once more at the very end of the guest's shutdown, after the services that write
 * identity on their way down have stopped: ifupdown's dhclient (its lease), systemd-random-seed (the seed) and
 * systemd-update-utmp (wtmp). systemd stops units in the reverse order of their start ordering, so a unit
 * ordered Before= those is stopped after them; DefaultDependencies=no avoids the cycle through sysinit.target.
 */
const LATE_SEAL_UNIT = [
  '--unit=virtnode-seal-at-shutdown', '--quiet', '--service-type=oneshot', '--property=RemainAfterExit=yes',
  '--property=DefaultDependencies=no', '--property=Conflicts=shutdown.target', '--property=Before=shutdown.target',
  '--property=After=local-fs.target',
  '--property=Before=networking.service systemd-networkd.service NetworkManager.service systemd-random-seed.service systemd-update-utmp.service',
  `--property=ExecStop=/bin/sh ${GUEST_SCRIPT} / live`, '/bin/true',
];

/**
 * Seals a running guest through qemu-guest-agent: runs the sealing script there as root, and again at the end of
 * its shutdown (through a transient systemd unit, when the guest runs systemd). The caller powers the guest off
 * right after. Returns undefined when no agent answers (the caller then seals offline).
 */
export async function sealThroughAgent(agentSocket: string, options: { signal?: AbortSignal } = {}): Promise<SealResult | undefined> {
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  let agent: GuestAgent;
  try {
    agent = await GuestAgent.connect(agentSocket, { timeoutMs: AGENT_CONNECT_TIMEOUT_MS, ...signal });
  } catch (e) {
    if (e instanceof VirtnodeError) return undefined; // no socket, or nobody answering on it
    throw e;
  }
  try {
    const step = async (what: string, args: string[], input?: string) => {
      const r = await agent.exec('/bin/sh', args, { timeoutMs: AGENT_SEAL_TIMEOUT_MS, ...(input === undefined ? {} : { input }), ...signal });
      if (r.exitCode !== 0) {
        throw new VirtnodeError('COMMAND_FAILED', `sealing through the guest agent: ${what} failed in the guest (exit code ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
      return r.stdout;
    };
    await step('writing the sealing script', ['-c', `umask 077 && cat > ${GUEST_SCRIPT}`], sealScript());
    const lines = (await step('the sealing script', [GUEST_SCRIPT, '/', 'live'])).split('\n');
    if (!lines.includes('SEAL-OK')) throw new VirtnodeError('COMMAND_FAILED', 'sealing through the guest agent: the script did not finish');
    const late = await step('scheduling the last pass', ['-c', 'if command -v systemd-run >/dev/null; then exec systemd-run "$@"; else echo no-systemd; fi', 'sh', ...LATE_SEAL_UNIT]);
    const changes = changesOf(lines);
    const when = late.includes('no-systemd') ? 'in the running guest, then powered off' : 'in the running guest and again at the end of its shutdown';
    return { method: 'guest-agent', root: '/', changes, summary: `through the guest agent (${when}): ${changes.length} changes` };
  } finally {
    agent.close();
  }
}
