/**
 * `template create --warm`: boots the sealed template once, with no NIC and no seed (cloud-init finds no
 * datasource and stays off, so nothing per-instance happens), waits until the guest agent answers and the boot
 * has settled, starts the first-boot program (cloud-init's code loaded, waiting for a job), pauses the guest and
 * saves its memory. Warm launches
 * load that state (instances/drivers/qemu/warm.ts) and finish the first boot through the agent.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { resolveAccelerator } from '../host/index.ts';
import { isVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { installFile } from '../lib/install-paths.ts';
import { ramInFile, resolvedMachine, saveState, warmQemuSpec } from '../instances/drivers/qemu/warm.ts';
import { run } from '../exec/run.ts';
import { removeRuntimeFiles, runtimePaths } from '../instances/runtime.ts';
import { createImage } from '../qemu/img.ts';
import { QEMU_BINARY, killQemu, spawnQemu, waitForExit } from '../qemu/process.ts';
import { tcgRamPadKiB } from '../qemu/ram-pad.ts';
import { programVersion } from '../host/programs.ts';
import * as qmpCommand from '../qmp/commands.ts';
import { GuestAgent } from '../qmp/guest-agent.ts';
import type { Template, WarmModel, WarmState } from './model.ts';
import { templateDir } from './paths.ts';

const BOOT_TIMEOUT_MS = 15 * 60_000;
const AGENT_TRY_MS = 3_000;
const SETTLE_TIMEOUT_MS = 5 * 60_000;
const SAVE_TIMEOUT_MS = 5 * 60_000;
const QUIT_TIMEOUT_MS = 10_000;
export const WARM_DIR = 'warm';
/** The guest's RAM at the save, mapped copy-on-write by every warm launch (see WarmModel.ramFile). */
const RAM_FILE = 'memory.ram';

/**
 * Waits for the boot's own jobs to end, so none is cut in the middle by the save. sshd, which has no host keys
 * yet (they come with the instance's seed), is stopped instead of being restarted in a loop meanwhile, and its
 * failed state and start counter are reset, so that a warm launch starts it with one `systemctl` once
 * cloud-init has written the instance's keys.
 */
const SETTLE_ARGV = ['/bin/sh', '-c', 'systemctl stop ssh.service; systemctl is-system-running --wait >/dev/null 2>&1; systemctl reset-failed ssh.service; true'];
/** The guest's side of a warm launch (src/instances/warm-first-boot.py), started now and saved waiting for its job. */
const FIRST_BOOT_DIR = '/run/virtnode-warm';
/**
 * Makes the saved state smaller: QEMU sends a zero page as a flag, any other page whole, and memory the guest
 * freed still holds its old bytes. So the free memory is written with zeros once (a file on /dev/shm, removed);
 * the page cache stays (a warm launch reads what the boot read).
 */
const COMPACT_ARGV = [
  '/bin/sh',
  '-c',
  'sync; n=$(awk \'/^MemFree:/ {print int($2 / 1024) - 96}\' /proc/meminfo); ' +
    '[ "$n" -gt 0 ] && dd if=/dev/zero of=/dev/shm/virtnode-zero bs=1M count="$n" 2>/dev/null; rm -f /dev/shm/virtnode-zero; sync; true',
];
const FIRST_BOOT_UNIT = 'virtnode-warm-first-boot';
/** What warm-first-boot.py imports (src/instances/), written next to it. */
const FIRST_BOOT_MODULES = ['first_boot_common.py', 'first_boot_caches.py'];
const READY_TIMEOUT_MS = 5 * 60_000;

export interface CaptureOptions {
  signal?: AbortSignal;
  onPhase?: (detail: string) => void;
}

async function waitForAgent(path: string, deadline: number, signal?: AbortSignal): Promise<GuestAgent> {
  for (;;) {
    try {
      return await GuestAgent.connect(path, { timeoutMs: AGENT_TRY_MS, ...(signal ? { signal } : {}) });
    } catch (e) {
      if (signal?.aborted) throw e;
      if (Date.now() > deadline) {
        throw new VirtnodeError('TIMEOUT', 'the template booted for its warm state, but its guest agent never answered', {
          cause: e,
          hint: 'the image needs qemu-guest-agent (virtnode images have it)',
        });
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

async function guestRun(agent: GuestAgent, argv: string[], signal?: AbortSignal, input?: string): Promise<number> {
  const r = await agent.exec(argv[0]!, argv.slice(1), { timeoutMs: SETTLE_TIMEOUT_MS, ...(signal ? { signal } : {}), ...(input === undefined ? {} : { input }) });
  return r.exitCode;
}

/** Starts the first-boot program as a transient service and waits until it has loaded cloud-init and waits for its job. */
async function startFirstBootProgram(agent: GuestAgent, signal?: AbortSignal): Promise<void> {
  const program = `${FIRST_BOOT_DIR}/first-boot.py`;
  // The program and the modules it shares with the cold first boot of virtnode's images, side by side.
  const files: Array<[string, string]> = [
    ...FIRST_BOOT_MODULES.map((m): [string, string] => [`${FIRST_BOOT_DIR}/${m}`, `src/instances/${m}`]),
    [program, 'src/instances/warm-first-boot.py'],
  ];
  for (const [guestPath, source] of files) {
    const write = ['/bin/sh', '-c', 'umask 077 && mkdir -p "$1" && cat > "$2"', 'sh', FIRST_BOOT_DIR, guestPath];
    if ((await guestRun(agent, write, signal, readFileSync(installFile(source), 'utf8'))) !== 0) {
      throw new VirtnodeError('COMMAND_FAILED', `could not write ${guestPath} in the guest`);
    }
  }
  if ((await guestRun(agent, ['systemd-run', `--unit=${FIRST_BOOT_UNIT}`, '--quiet', '/usr/bin/python3', program], signal)) !== 0) {
    throw new VirtnodeError('COMMAND_FAILED', `could not start ${FIRST_BOOT_UNIT} in the guest (systemd-run)`);
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while ((await guestRun(agent, ['test', '-e', `${FIRST_BOOT_DIR}/ready`], signal)) !== 0) {
    if (Date.now() > deadline) {
      throw new VirtnodeError('TIMEOUT', `the first-boot program did not get ready in the guest`, { hint: `see journalctl -u ${FIRST_BOOT_UNIT} in the guest` });
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** Makes `<template>/warm/` (disk overlay and memory state, both read-only) and returns what to record. */
export async function captureWarmState(core: CoreContext, template: Template, options: CaptureOptions = {}): Promise<WarmState> {
  const started = Date.now();
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const dir = join(templateDir(core.paths, template.name), WARM_DIR);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const diskPath = join(dir, 'disk.qcow2');
  const statePath = join(dir, 'memory.state');
  const ramPath = join(dir, RAM_FILE);
  const paths = runtimePaths(dir);
  let spawned: Awaited<ReturnType<typeof spawnQemu>> | undefined;
  let agent: GuestAgent | undefined;
  try {
    await createImage(diskPath, { format: 'qcow2', backing: { path: template.diskPath, format: template.format }, ...signal });
    const { accel } = await resolveAccelerator(template.defaults.accel, { cacheDir: core.paths.hostCache, ...signal });
    const model: WarmModel = {
      qemuVersion: '',
      machine: 'q35',
      accel,
      cpus: template.defaults.cpus,
      memoryMiB: template.defaults.memoryMiB,
      ...(template.defaults.boot === undefined ? {} : { boot: template.defaults.boot }),
      ...(template.defaults.tuning === undefined ? {} : { tuning: template.defaults.tuning }),
    };
    if (ramInFile(model)) model.ramFile = RAM_FILE;
    // Decided once, here: every launch from this state loads it into the same RAM sizes.
    const installed = await programVersion(QEMU_BINARY, { cacheDir: core.paths.hostCache, ...signal });
    const pad = tcgRamPadKiB({ accel, qemuVersion: installed.state === 'ok' ? installed.version : '', hugepages: template.defaults.tuning?.hugepages === true });
    if (pad > 0) model.memoryPadKiB = pad;
    model.clockFromJob = true;
    model.jobInFiles = true;
    const spec = warmQemuSpec(model, { name: `${template.name}-warm`, uuid: randomUUID(), smbiosUuid: randomUUID(), diskPath, paths, vmgenid: randomUUID(), incoming: false, ramPath });
    spawned = await spawnQemu(spec, { logPath: paths.qemuLog, ...signal });
    const version = await qmpCommand.queryVersion(spawned.qmp);
    model.qemuVersion = `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`;
    model.machine = await resolvedMachine(spawned.qmp);
    await qmpCommand.cont(spawned.qmp);
    options.onPhase?.(`booting ${template.name} once (QEMU pid ${spawned.identity.pid}, ${model.machine}, ${accel})`);

    agent = await waitForAgent(paths.guestAgent, Date.now() + BOOT_TIMEOUT_MS, options.signal);
    options.onPhase?.(`guest agent answered after ${Math.round((Date.now() - started) / 1000)} s`);
    // A boot that never settles (a unit stuck in a restart loop) is saved as it is after the wait, not refused.
    await agent.exec(SETTLE_ARGV[0]!, SETTLE_ARGV.slice(1), { timeoutMs: SETTLE_TIMEOUT_MS, ...signal }).catch((e: unknown) => {
      if (!isVirtnodeError(e, 'TIMEOUT') || options.signal?.aborted === true) throw e;
    });
    await startFirstBootProgram(agent, options.signal);
    await guestRun(agent, COMPACT_ARGV, options.signal);
    const bootMs = Date.now() - started;
    agent.close();
    agent = undefined;

    await qmpCommand.stop(spawned.qmp);
    const stateBytes = await saveState(spawned.qmp, statePath, join(dir, 'outgoing.sock'), SAVE_TIMEOUT_MS, { ramInFile: model.ramFile !== undefined });
    await qmpCommand.quit(spawned.qmp).catch(() => {});
    if (!(await waitForExit(spawned.identity, QUIT_TIMEOUT_MS))) await killQemu(spawned.identity);
    spawned.qmp.close();
    spawned = undefined;
    chmodSync(diskPath, 0o444);
    chmodSync(statePath, 0o444);
    if (model.ramFile !== undefined) {
      // The free memory was zeroed: those ranges become holes (no disk space; they read as zeros).
      await run(['fallocate', '--dig-holes', ramPath], { timeoutMs: SAVE_TIMEOUT_MS, ...signal });
      chmodSync(ramPath, 0o444);
    }
    removeRuntimeFiles(dir);
    options.onPhase?.(
      model.ramFile === undefined
        ? `memory state saved: ${statSync(statePath).size} bytes`
        : `memory state saved: devices ${statSync(statePath).size} bytes, RAM in ${RAM_FILE} (${statSync(ramPath).blocks * 512} bytes allocated)`,
    );
    return { diskPath, statePath, stateBytes, model, bootMs, createdAt: new Date().toISOString() };
  } catch (e) {
    agent?.close();
    if (spawned !== undefined) {
      spawned.qmp.close();
      await killQemu(spawned.identity).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
