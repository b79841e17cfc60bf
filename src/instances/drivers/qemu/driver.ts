import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolveAccelerator } from '../../../host/index.ts';
import { VirtnodeError } from '../../../lib/errors.ts';
import type { StatePaths } from '../../../lib/paths.ts';
import { processCmdline, processStartTime, processStopped, type ProcessIdentity } from '../../../lib/proc.ts';
import { QEMU_BINARY, isOurQemu, killQemu, lastLogLine, readPidfile, spawnQemu, waitForExit, type SpawnedQemu } from '../../../qemu/process.ts';
import { tcgRamPadKiB } from '../../../qemu/ram-pad.ts';
import { programVersion } from '../../../host/programs.ts';
import * as qmpCommand from '../../../qmp/commands.ts';
import type { QemuSpec } from '../../../qemu/spec.ts';
import { QmpConnection } from '../../../qmp/connection.ts';
import { connectMonitor, explainSilence } from '../../monitor.ts';
import { rotateConsoleLog } from '../../console-log.ts';
import type { ConsoleEndpoints, DriverSample, InstanceDriver, LiveDevices, Observation, PreparedStart, StartOptions, StopMethod, WarmBoot } from '../../driver.ts';
import { type Accel, type Instance, USER_NETWORK, type WarmRuntime } from '../../model.ts';
import { checkTuningOnHost } from '../../tuning.ts';
import { tuningHostFacts } from '../../../host/tuning-facts.ts';
import { applyPinning } from './pinning.ts';
import { toQemuNic, toQemuSpec } from '../../qemu-spec.ts';
import { loadState, plugNics, warmQemuSpec } from './warm.ts';
import { removeRuntimeFiles, runtimePaths } from '../../runtime.ts';
import { balloonQemu, inspectQemu } from './live.ts';
import { sampleQemu } from './metrics.ts';

const QMP_CONNECT_TIMEOUT_MS = 5_000;
const QUIT_TIMEOUT_MS = 10_000;
/** Observation uses the query monitor with a short timeout, so a long operation holding the main one never blocks it. */
const QUERY_TIMEOUT_MS = 1_000;
const ADOPT_CONNECT_TIMEOUT_MS = 2_000;
const WARM_LOAD_TIMEOUT_MS = 120_000;

/**
 * VMs: one detached QEMU process per running instance (started paused with -S, then `cont`), driven over its
 * QMP monitors (qmp.sock for operations, qmp-query.sock for observation) and re-attached by any later process.
 */
export class QemuDriver implements InstanceDriver {
  readonly name = 'qemu';
  readonly capabilities = { snapshots: true, clones: true, nicLink: 'tap' as const, storage: 'disks' as const };
  private readonly paths: StatePaths;

  constructor(paths: StatePaths) {
    this.paths = paths;
  }

  private runtime(instance: Instance): ReturnType<typeof runtimePaths> {
    return runtimePaths(this.paths.instanceDir(instance.name));
  }

  async prepareStart(instance: Instance, options: StartOptions): Promise<PreparedStart> {
    const { accel } = await resolveAccelerator(instance.spec.accel, { cacheDir: this.paths.hostCache, ...(options.signal ? { signal: options.signal } : {}) });
    const specOptions: { restrictUserNetwork: boolean; hugepagePath?: string } = { restrictUserNetwork: options.restrictUserNetwork === true };
    const tuning = instance.spec.tuning;
    if (tuning !== undefined) {
      // The host can change between define and start (huge pages taken, CPUs offlined): checked again now.
      const host = await tuningHostFacts(this.paths.root);
      checkTuningOnHost(tuning, { memoryMiB: instance.spec.memoryMiB, tapNics: instance.nics.filter((n) => n.network !== USER_NETWORK).length, accel }, host);
      if (tuning.hugepages === true && host.hugepages.mount !== undefined) specOptions.hugepagePath = host.hugepages.mount;
    }
    const warm = options.warm;
    if (warm !== undefined) {
      if (warm.model.accel !== accel) {
        throw new VirtnodeError('HOST_UNSUPPORTED', `the warm state was saved under ${warm.model.accel}, and this start would use ${accel}`, {
          hint: 'launch it cold (--cold), or make the warm state again on this host',
        });
      }
      // The saved layout, whatever this host would choose now (a state loads only into the same RAM sizes).
      // And what a live move's target needs to build the same (warmRunningSpec): kept until the next, cold, start.
      const warmRuntime: WarmRuntime = { machine: warm.model.machine, vmgenid: randomUUID(), ...(warm.model.ramFile === undefined ? {} : { ramBackend: true }) };
      const runtime = { accel, qemuVersion: warm.model.qemuVersion, ...(warm.model.memoryPadKiB === undefined ? {} : { memoryPadKiB: warm.model.memoryPadKiB }), warm: warmRuntime };
      return { reason: `loaded a warm state with ${accel}`, runtime, run: (ready, runOptions) => this.runWarm(ready, warm, warmRuntime, specOptions, runOptions) };
    }
    const qemuVersion = await this.qemuVersion(options.signal);
    const pad = tcgRamPadKiB({ accel, qemuVersion, hugepages: tuning?.hugepages === true });
    const runtime = { accel, qemuVersion, ...(pad === 0 ? {} : { memoryPadKiB: pad }) };
    return { reason: `started with ${accel}`, runtime, run: (ready, runOptions) => this.run(ready, accel, specOptions, runOptions) };
  }

  /** The installed QEMU's release (`7.2.22`; cached per binary), or empty when it cannot be read (its start then says why). */
  private async qemuVersion(signal: AbortSignal | undefined): Promise<string> {
    const qemu = await programVersion(QEMU_BINARY, { cacheDir: this.paths.hostCache, ...(signal === undefined ? {} : { signal }) });
    return qemu.state === 'ok' ? qemu.version : '';
  }

  /**
   * A warm start: QEMU with the warm state's exact device model waits for the state (-incoming defer), loads it,
   * gets the instance's NICs hot-plugged (their own MACs) and a new VM generation ID, then runs. What makes the
   * guest this instance (hostname, machine-id, keys, cloud-init) is done through its agent afterwards.
   */
  private async runWarm(
    instance: Instance,
    warm: WarmBoot,
    warmRuntime: WarmRuntime,
    specOptions: { restrictUserNetwork: boolean; hugepagePath?: string },
    options: { signal?: AbortSignal; onProcess: (process: ProcessIdentity) => void },
  ): Promise<void> {
    const dir = this.paths.instanceDir(instance.name);
    const paths = runtimePaths(dir);
    rotateConsoleLog(paths.serialLog);
    const disk = instance.spec.disks[0];
    if (disk === undefined) throw new VirtnodeError('INTERNAL', `${instance.name} has no disk to load its warm state with`);
    const spec = warmQemuSpec(warm.model, {
      name: instance.name,
      uuid: instance.uuid,
      smbiosUuid: instance.smbiosUuid,
      diskPath: disk.path,
      paths,
      vmgenid: warmRuntime.vmgenid,
      incoming: true,
      ...(warm.model.ramFile === undefined ? {} : { ramPath: join(dirname(warm.statePath), warm.model.ramFile) }),
      ...(specOptions.hugepagePath === undefined ? {} : { hugepagePath: specOptions.hugepagePath }),
    });
    await this.startAndContinue(spec, paths.qemuLog, options, async (spawned) => {
      const v = spawned.qmp.greeting.version.qemu;
      const version = `${v.major}.${v.minor}.${v.micro}`;
      if (version !== warm.model.qemuVersion) {
        throw new VirtnodeError('HOST_UNSUPPORTED', `the warm state was saved by QEMU ${warm.model.qemuVersion}, and this host runs ${version}`, {
          hint: 'launch it cold (--cold), or make the warm state again (a new template with --warm)',
        });
      }
      await applyPinning(spawned.qmp, spawned.identity.pid, instance.spec.tuning);
      await loadState(spawned.qmp, warm.statePath, join(dir, 'incoming.sock'), WARM_LOAD_TIMEOUT_MS, { ramInFile: warm.model.ramFile !== undefined });
      await plugNics(spawned.qmp, instance.nics.map((n) => toQemuNic(instance, n, specOptions)));
    });
  }

  private async run(
    instance: Instance,
    accel: Accel,
    specOptions: { restrictUserNetwork: boolean; hugepagePath?: string },
    options: { signal?: AbortSignal; onProcess: (process: ProcessIdentity) => void },
  ): Promise<void> {
    const dir = this.paths.instanceDir(instance.name);
    rotateConsoleLog(runtimePaths(dir).serialLog);
    await this.startAndContinue(toQemuSpec(instance, dir, accel, specOptions), runtimePaths(dir).qemuLog, options, (spawned) =>
      applyPinning(spawned.qmp, spawned.identity.pid, instance.spec.tuning),
    );
  }

  /**
   * Spawns QEMU paused, reports its process, runs `prepare` over QMP, then lets the guest run. Any failure before
   * that kills the QEMU it spawned, so a failed start leaves no process behind.
   */
  private async startAndContinue(
    spec: QemuSpec,
    logPath: string,
    options: { signal?: AbortSignal; onProcess: (process: ProcessIdentity) => void },
    prepare: (spawned: SpawnedQemu) => Promise<void>,
  ): Promise<void> {
    let spawned: SpawnedQemu | undefined;
    try {
      spawned = await spawnQemu(spec, { logPath, ...(options.signal ? { signal: options.signal } : {}) });
      options.onProcess(spawned.identity);
      await prepare(spawned);
      await qmpCommand.cont(spawned.qmp);
    } catch (e) {
      if (spawned !== undefined) await killQemu(spawned.identity).catch(() => {});
      throw e;
    } finally {
      spawned?.qmp.close();
    }
  }


  async stop(instance: Instance, options: { force: boolean; timeoutMs: number }): Promise<StopMethod> {
    const identity = { pid: instance.pid!, start: instance.pidStart! };
    let method: StopMethod = options.force ? 'forced' : 'acpi';
    let qmp: QmpConnection | undefined;
    // A stopped process (SIGSTOP) answers nothing: it is killed at once, without waiting on its monitor.
    if (!processStopped(identity.pid)) {
      try {
        qmp = await QmpConnection.connect(this.runtime(instance).qmp, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
      } catch {
        /* unresponsive: it can only be killed */
      }
    }
    if (qmp === undefined && !options.force) method = 'forced-after-timeout';
    try {
      if (qmp !== undefined && method === 'acpi') {
        const poweredOff = await powerDown(qmp, instance, options.timeoutMs);
        if (!poweredOff) method = 'forced-after-timeout';
      }
      if (qmp !== undefined) await qmpCommand.quit(qmp).catch(() => {});
      // Without a monitor, no quit was sent: nothing to wait for.
      if (qmp === undefined || !(await waitForExit(identity, QUIT_TIMEOUT_MS))) await killQemu(identity);
    } finally {
      qmp?.close();
    }
    return method;
  }

  pause(instance: Instance): Promise<void> {
    return this.withMonitor(instance, qmpCommand.stop);
  }

  resume(instance: Instance): Promise<void> {
    return this.withMonitor(instance, qmpCommand.cont);
  }

  private async withMonitor(instance: Instance, command: (qmp: QmpConnection) => Promise<void>): Promise<void> {
    const qmp = await connectMonitor(this.runtime(instance).qmp, instance, QMP_CONNECT_TIMEOUT_MS);
    try {
      await command(qmp);
    } catch (e) {
      throw explainSilence(e, instance);
    } finally {
      qmp.close();
    }
  }

  async kill(instance: Instance): Promise<void> {
    if (instance.pid === undefined || instance.pidStart === undefined) return;
    const identity = { pid: instance.pid, start: instance.pidStart };
    if (isOurQemu(identity, instance.uuid)) await killQemu(identity);
  }

  clearRuntime(instance: Instance): void {
    removeRuntimeFiles(this.paths.instanceDir(instance.name));
  }

  async observe(instance: Instance): Promise<Observation> {
    const identity = { pid: instance.pid ?? -1, start: instance.pidStart ?? '' };
    const paths = this.runtime(instance);
    if (!isOurQemu(identity, instance.uuid)) {
      const log = lastLogLine(paths.qemuLog);
      return { state: 'gone', reason: `QEMU (pid ${identity.pid}) exited without a guest shutdown: it was killed or crashed${log === 'no message' ? '' : ` (last QEMU message: ${log})`}` };
    }
    const status = await queryRunState(paths.qmpQuery, QUERY_TIMEOUT_MS);
    if (status === undefined) return { state: 'unknown' };
    if (status.status === 'shutdown') return { state: 'stopped', reason: 'the guest powered itself off' };
    if (status.status === 'guest-panicked') return { state: 'crashed', reason: 'the guest kernel panicked' };
    return status.status === 'running' ? { state: 'running' } : { state: 'paused', reason: `QEMU reports ${status.status}` };
  }

  find(instance: Instance): ProcessIdentity | undefined {
    const candidates = [instance.pid, readPidfile(this.runtime(instance).pidfile)].filter((p): p is number => p !== undefined);
    for (const pid of candidates) {
      const start = processStartTime(pid);
      if (start !== undefined && isOurQemu({ pid, start }, instance.uuid)) return { pid, start };
    }
    return undefined;
  }

  async guestRunning(instance: Instance): Promise<boolean> {
    try {
      const qmp = await QmpConnection.connect(this.runtime(instance).qmpQuery, { timeoutMs: ADOPT_CONNECT_TIMEOUT_MS });
      try {
        return (await qmpCommand.queryStatus(qmp)).running;
      } finally {
        qmp.close();
      }
    } catch {
      return false;
    }
  }

  async releaseStorage(_dir: string): Promise<void> {
    // A VM's disks are files QEMU opens itself: nothing is mounted on the host.
  }

  async killOrphan(dir: string, pid = readPidfile(runtimePaths(dir).pidfile)): Promise<void> {
    if (pid !== undefined) await killIfQemuOf(pid, dir);
  }

  findOrphans(instancesDir: string, known: ReadonlySet<string>): Array<{ pid: number; dir: string }> {
    const found: Array<{ pid: number; dir: string }> = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let comm: string;
      try {
        comm = readFileSync(`/proc/${entry}/comm`, 'utf8');
      } catch {
        continue;
      }
      if (!comm.startsWith('qemu-system')) continue;
      const cmdline = processCmdline(Number(entry));
      const pidfile = cmdline[cmdline.indexOf('-pidfile') + 1];
      if (pidfile === undefined || !pidfile.startsWith(`${instancesDir}/`)) continue;
      const name = pidfile.slice(instancesDir.length + 1).split('/')[0]!;
      if (!known.has(name)) found.push({ pid: Number(entry), dir: join(instancesDir, name) });
    }
    return found;
  }

  consoles(instance: Instance): ConsoleEndpoints {
    const paths = this.runtime(instance);
    return { serial: paths.serial, serialLog: paths.serialLog, vnc: paths.vnc };
  }

  sample(instance: Instance, options: { guestNics: boolean }): Promise<DriverSample> {
    return sampleQemu(instance, this.runtime(instance), options);
  }

  inspect(instance: Instance): Promise<LiveDevices> {
    return inspectQemu(this.runtime(instance).qmpQuery);
  }

  setLiveMemory(instance: Instance, memoryMiB: number): Promise<void> {
    return balloonQemu(this.runtime(instance).qmp, memoryMiB);
  }

  execArgv(): undefined {
    return undefined; // commands reach a VM over SSH
  }
}

/**
 * How often the ACPI power button is pressed again while the guest has not powered off. A press is an event, not
 * a state: one that comes while the guest is still booting, before anything in it listens (logind, acpid), is lost,
 * and the guest would be forced off at the timeout although it could have shut down cleanly seconds later.
 */
const POWER_BUTTON_REPEAT_MS = 3_000;

/** ACPI power button, pressed again until the guest's own SHUTDOWN. Returns false if it did not come in time. */
async function powerDown(qmp: QmpConnection, instance: Instance, timeoutMs: number): Promise<boolean> {
  const status = await qmpCommand.queryStatus(qmp);
  if (status.status === 'shutdown') return true;
  const shutdown = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs });
  shutdown.catch(() => {});
  if (instance.state === 'paused') await qmpCommand.cont(qmp); // a paused guest cannot see the power button
  await qmpCommand.systemPowerdown(qmp);
  const pressAgain = setInterval(() => qmpCommand.systemPowerdown(qmp).catch(() => {}), POWER_BUTTON_REPEAT_MS);
  try {
    await shutdown;
    return true;
  } catch (e) {
    if (e instanceof VirtnodeError && (e.code === 'QMP_TIMEOUT' || e.code === 'TIMEOUT')) return false;
    throw e;
  } finally {
    clearInterval(pressAgain);
  }
}

/** query-status on a monitor socket; undefined when QEMU is busy or going away (a VirtnodeError). */
async function queryRunState(socket: string, timeoutMs: number): Promise<qmpCommand.StatusInfo | undefined> {
  let qmp: QmpConnection | undefined;
  try {
    qmp = await QmpConnection.connect(socket, { timeoutMs });
    return await qmpCommand.queryStatus(qmp, { timeoutMs });
  } catch (e) {
    if (e instanceof VirtnodeError) return undefined;
    throw e;
  } finally {
    qmp?.close();
  }
}

/** Kills `pid` only if it is a QEMU whose pidfile is this directory's (never an unrelated process). */
async function killIfQemuOf(pid: number, dir: string): Promise<void> {
  const start = processStartTime(pid);
  if (start === undefined) return;
  const cmdline = processCmdline(pid);
  const pidfileAt = cmdline.indexOf('-pidfile');
  if (pidfileAt >= 0 && cmdline[pidfileAt + 1] === runtimePaths(dir).pidfile) await killQemu({ pid, start });
}
