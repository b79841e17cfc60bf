/**
 * `template create --warm`: boots the sealed template once, with no NIC and no seed (cloud-init finds no
 * datasource and stays off, so nothing per-instance happens), waits until the boot has settled and the guest
 * agent answers, warms the page cache with cloud-init's code, pauses the guest and saves its memory. Warm launches
 * load that state (instances/drivers/qemu/warm.ts) and finish the first boot through the agent.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { resolveAccelerator } from '../host/index.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { resolvedMachine, saveState, warmQemuSpec } from '../instances/drivers/qemu/warm.ts';
import { removeRuntimeFiles, runtimePaths } from '../instances/runtime.ts';
import { createImage } from '../qemu/img.ts';
import { killQemu, spawnQemu, waitForExit } from '../qemu/process.ts';
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

/**
 * Reads cloud-init's code (every config module) once, so a warm launch finds it in the page cache; and waits for
 * the boot's own jobs to end, so none is cut in the middle by the save.
 */
const PREPARE_ARGV = [
  '/bin/sh',
  '-c',
  'systemctl is-system-running --wait >/dev/null 2>&1; ' +
    'python3 -c "import pkgutil, cloudinit.cmd.main as m, cloudinit.config as c; [__import__(\'cloudinit.config.\' + i.name) for i in pkgutil.iter_modules(c.__path__)]"; ' +
    'sync',
];

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

/** Makes `<template>/warm/` (disk overlay and memory state, both read-only) and returns what to record. */
export async function captureWarmState(core: CoreContext, template: Template, options: CaptureOptions = {}): Promise<WarmState> {
  const started = Date.now();
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const dir = join(templateDir(core.paths, template.name), WARM_DIR);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const diskPath = join(dir, 'disk.qcow2');
  const statePath = join(dir, 'memory.state');
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
    const spec = warmQemuSpec(model, { name: `${template.name}-warm`, uuid: randomUUID(), smbiosUuid: randomUUID(), diskPath, paths, vmgenid: randomUUID(), incoming: false });
    spawned = await spawnQemu(spec, { logPath: paths.qemuLog, ...signal });
    const version = await qmpCommand.queryVersion(spawned.qmp);
    model.qemuVersion = `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`;
    model.machine = await resolvedMachine(spawned.qmp);
    await qmpCommand.cont(spawned.qmp);
    options.onPhase?.(`booting ${template.name} once (QEMU pid ${spawned.identity.pid}, ${model.machine}, ${accel})`);

    agent = await waitForAgent(paths.guestAgent, Date.now() + BOOT_TIMEOUT_MS, options.signal);
    options.onPhase?.(`guest agent answered after ${Math.round((Date.now() - started) / 1000)} s`);
    const prepared = await agent.exec(PREPARE_ARGV[0]!, PREPARE_ARGV.slice(1), { timeoutMs: SETTLE_TIMEOUT_MS, ...signal });
    if (prepared.exitCode !== 0) throw new VirtnodeError('COMMAND_FAILED', `preparing the warm state in the guest failed: ${prepared.stderr.trim()}`);
    const bootMs = Date.now() - started;
    agent.close();
    agent = undefined;

    await qmpCommand.stop(spawned.qmp);
    const stateBytes = await saveState(spawned.qmp, statePath, join(dir, 'outgoing.sock'), SAVE_TIMEOUT_MS);
    await qmpCommand.quit(spawned.qmp).catch(() => {});
    if (!(await waitForExit(spawned.identity, QUIT_TIMEOUT_MS))) await killQemu(spawned.identity);
    spawned.qmp.close();
    spawned = undefined;
    chmodSync(diskPath, 0o444);
    chmodSync(statePath, 0o444);
    removeRuntimeFiles(dir);
    options.onPhase?.(`memory state saved: ${statSync(statePath).size} bytes`);
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
