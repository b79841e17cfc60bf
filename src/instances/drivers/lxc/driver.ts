import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hostCgroupVersion, subordinateIdsMissing } from '../../../host/cgroups.ts';
import { ensureInotifyInstances } from '../../../host/inotify.ts';
import { VirtnodeError } from '../../../lib/errors.ts';
import type { StatePaths } from '../../../lib/paths.ts';
import { processStartTime, type ProcessIdentity } from '../../../lib/proc.ts';
import { vethPeerName } from '../../../network/names.ts';
import { rotateConsoleLog } from '../../console-log.ts';
import type { ConsoleEndpoints, DriverSample, InstanceDriver, Observation, PreparedStart, StartOptions, StopMethod } from '../../driver.ts';
import { type Instance, USER_NETWORK } from '../../model.ts';
import { ID_COUNT, renderLxcConfig } from './config.ts';
import { bringUpHotplugNic, removeHotplugStanza, writeHotplugStanza } from './hotplug-nic.ts';
import { initFailureFromConsole } from './init-failure.ts';
import { ensureLayer, growLayer, layerDirs, releaseLayer } from './layer.ts';
import { type LxcTarget, lxcAttachArgv, lxcConsoleArgv, moveLinkIntoNetns, lxcFreeze, lxcInitPid, lxcKill, lxcShutdown, lxcStart, lxcState, lxcStats, lxcUnfreeze, parseMonitorCmdline } from './tools.ts';

const START_TIMEOUT_MS = 60_000;

/** The files of a container in its instance directory (which is also its LXC container directory). */
export function containerPaths(dir: string): { config: string; consoleLog: string; lxcLog: string } {
  // Its writable layer (overlay upper and work directories) is layer.ts's.
  return {
    config: join(dir, 'config'),
    consoleLog: join(dir, 'console.log'),
    lxcLog: join(dir, 'lxc.log'),
  };
}

/**
 * System containers: LXC (`lxc-start -d`, a monitor process per container that outlives virtnode), the instances
 * directory as LXC's lxcpath and the instance's name as the container's. The root filesystem is an overlay that
 * LXC mounts inside the container's own mount namespace, so a crash leaves no mount on the host.
 */
export class LxcDriver implements InstanceDriver {
  readonly name = 'lxc';
  readonly capabilities = { snapshots: true, clones: true, nicLink: 'veth' as const, storage: 'upper-dir' as const };
  private readonly paths: StatePaths;

  constructor(paths: StatePaths) {
    this.paths = paths;
  }

  private target(instance: Instance): LxcTarget {
    return { lxcpath: this.paths.instances, name: instance.name };
  }

  async prepareStart(instance: Instance, _options: StartOptions): Promise<PreparedStart> {
    const container = instance.spec.container;
    if (container === undefined) throw new VirtnodeError('INTERNAL', `instance ${instance.name} is a container without a container spec`);
    if (!existsSync(container.lowerDir)) {
      throw new VirtnodeError('INVALID_STATE', `the root filesystem of ${instance.name} (${container.lowerDir}) is gone`, { hint: 'launch a new container from the image' });
    }
    if (container.idmapBase !== undefined) assertSubordinateIds(container.idmapBase);
    const dir = this.paths.instanceDir(instance.name);
    const files = containerPaths(dir);
    const config = renderLxcConfig({
      hostname: instance.name,
      lowerDir: container.lowerDir,
      upperDir: layerDirs(dir, container).upper,
      idmapBase: container.idmapBase,
      nics: instance.nics.filter((n) => n.network !== USER_NETWORK).map((n) => ({ index: n.index, link: vethPeerName(instance.uuid, n.index), mac: n.mac })),
      cpus: instance.spec.cpus,
      memoryMiB: instance.spec.memoryMiB,
      maxProcesses: container.maxProcesses,
      cgroup: hostCgroupVersion(),
      consoleLog: files.consoleLog,
      lxcLog: files.lxcLog,
    });
    const privilege = container.idmapBase === undefined ? 'privileged' : `unprivileged, root is host uid ${container.idmapBase}`;
    // The default (128) runs out at about 14 containers; below the floor and not writable, the start goes on and a
    // container whose init dies of it says so (initFailureFromConsole).
    const inotify = ensureInotifyInstances();
    const raised = inotify.raisedFrom === undefined ? '' : `; raised fs.inotify.max_user_instances from ${inotify.raisedFrom} to ${inotify.limit}`;
    return {
      reason: `started with lxc (${privilege}${raised})`,
      run: async (ready, options) => {
        writeFileSync(files.config, config, { mode: 0o600 });
        // A sized layer's image is mounted again after a host reboot (idempotent otherwise).
        await ensureLayer(dir, container);
        rmSync(files.lxcLog, { force: true }); // this start's errors only
        rotateConsoleLog(files.consoleLog);
        const t = this.target(ready);
        // A container of a start that crashed before its pid was recorded (no record names it): never two.
        if ((await lxcState(t)) !== 'STOPPED') await lxcKill(t);
        try {
          await lxcStart(t, { timeoutMs: START_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
          const pid = await lxcInitPid(t);
          const start = pid === undefined ? undefined : processStartTime(pid);
          if (pid === undefined || start === undefined) throw new VirtnodeError('COMMAND_FAILED', `container ${ready.name} stopped right after it started`, { hint: `see ${files.lxcLog}` });
          options.onProcess({ pid, start });
        } catch (e) {
          await lxcKill(t).catch(() => {});
          // An init that exits at once makes lxc-info fail on the closing monitor ("Failed to receive file
          // descriptors for command get_init_pid"): the console says why.
          const init = initFailureFromConsole(files.consoleLog);
          if (init !== undefined) {
            throw new VirtnodeError(init.hostLimit ? 'HOST_UNSUPPORTED' : 'COMMAND_FAILED', `container ${ready.name} did not start: ${init.message}`, { hint: init.hint, cause: e });
          }
          const why = lxcErrors(files.lxcLog);
          if (why === undefined) throw e;
          throw new VirtnodeError('COMMAND_FAILED', `container ${ready.name} did not start: ${why}`, { hint: `the whole log: ${files.lxcLog}`, cause: e });
        }
      },
    };
  }

  async stop(instance: Instance, options: { force: boolean; timeoutMs: number }): Promise<StopMethod> {
    const t = this.target(instance);
    if (!options.force) {
      // A frozen container cannot see the halt signal.
      const state = await lxcState(t);
      if (state === 'FROZEN' || state === 'FREEZING') await lxcUnfreeze(t);
      if (await lxcShutdown(t, Math.max(1, Math.ceil(options.timeoutMs / 1000)))) return 'acpi';
    }
    await lxcKill(t);
    return options.force ? 'forced' : 'forced-after-timeout';
  }

  async pause(instance: Instance): Promise<void> {
    const t = this.target(instance);
    try {
      await lxcFreeze(t);
    } catch (e) {
      // Never leave it half frozen (FREEZING): the recorded state stays running, so it must run.
      await lxcUnfreeze(t).catch(() => {});
      throw e;
    }
  }

  resume(instance: Instance): Promise<void> {
    return lxcUnfreeze(this.target(instance));
  }

  async kill(instance: Instance): Promise<void> {
    const t = this.target(instance);
    if ((await lxcState(t)) !== 'STOPPED') await lxcKill(t);
  }

  clearRuntime(_instance: Instance): void {
    // LXC keeps its runtime state (command socket, monitor) itself and removes it when the container stops.
  }

  async observe(instance: Instance): Promise<Observation> {
    const identity = { pid: instance.pid ?? -1, start: instance.pidStart ?? '' };
    if (processStartTime(identity.pid) !== identity.start) {
      const init = initFailureFromConsole(containerPaths(this.paths.instanceDir(instance.name)).consoleLog);
      if (init !== undefined) return { state: 'stopped', reason: `${init.message} (${init.hint})` };
      return { state: 'stopped', reason: `the container's init (pid ${identity.pid}) ended: it was shut down from inside, or killed` };
    }
    const state = await lxcState(this.target(instance));
    if (state === 'FROZEN') return { state: 'paused', reason: 'frozen (cgroup freezer)' };
    if (state === 'RUNNING') return { state: 'running' };
    return { state: 'unknown' };
  }

  find(instance: Instance): ProcessIdentity | undefined {
    if (instance.pid !== undefined) {
      const start = processStartTime(instance.pid);
      if (start !== undefined && start === instance.pidStart) return { pid: instance.pid, start };
    }
    // A crash may have come before the pid was recorded: the container's init is the child of its LXC monitor.
    const monitor = this.monitors().find((m) => m.lxcpath === this.paths.instances && m.name === instance.name);
    if (monitor === undefined) return undefined;
    const child = readOrEmpty(`/proc/${monitor.pid}/task/${monitor.pid}/children`).trim().split(' ')[0];
    const start = child === undefined || child === '' ? undefined : processStartTime(Number(child));
    return start === undefined ? undefined : { pid: Number(child), start };
  }

  /** Every LXC monitor process on the host, with the container it runs. */
  private monitors(): Array<LxcTarget & { pid: number }> {
    const found: Array<LxcTarget & { pid: number }> = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const monitor = parseMonitorCmdline(readOrEmpty(`/proc/${entry}/cmdline`));
      if (monitor !== undefined) found.push({ ...monitor, pid: Number(entry) });
    }
    return found;
  }

  async plugLink(instance: Instance, link: string, ifname: string): Promise<void> {
    const live = this.find(instance);
    if (live === undefined) throw new VirtnodeError('INVALID_STATE', `container ${instance.name} is not running: its NIC is added at its next start`);
    const t = this.target(instance);
    const ifupdown = await writeHotplugStanza(t, ifname);
    await moveLinkIntoNetns(live.pid, link, ifname);
    if (ifupdown) await bringUpHotplugNic(t, ifname);
  }

  async unplugLink(instance: Instance, ifname: string): Promise<void> {
    await removeHotplugStanza(this.target(instance), ifname);
  }

  async guestRunning(instance: Instance): Promise<boolean> {
    return (await lxcState(this.target(instance))) === 'RUNNING';
  }

  async growStorage(instance: Instance, sizeBytes: number): Promise<Instance['spec']> {
    const container = instance.spec.container;
    if (container === undefined) throw new VirtnodeError('INTERNAL', `instance ${instance.name} is a container without a container spec`);
    await growLayer(this.paths.instanceDir(instance.name), container, sizeBytes, 'disk', this.paths.instances);
    return { ...instance.spec, container: { ...container, diskSizeBytes: sizeBytes } };
  }

  releaseStorage(dir: string): Promise<void> {
    return releaseLayer(dir);
  }

  async killOrphan(dir: string, _pid?: number): Promise<void> {
    await lxcKill({ lxcpath: dirname(dir), name: basename(dir) });
  }

  findOrphans(instancesDir: string, known: ReadonlySet<string>): Array<{ pid: number; dir: string }> {
    return this.monitors()
      .filter((m) => m.lxcpath === instancesDir && !known.has(m.name))
      .map((m) => ({ pid: m.pid, dir: join(instancesDir, m.name) }));
  }

  consoles(instance: Instance): ConsoleEndpoints {
    const dir = this.paths.instanceDir(instance.name);
    // The console is recorded (lxc.console.logfile) and shared: lxc-console attaches to the same pty, as a client.
    return { serial: undefined, serialCommand: lxcConsoleArgv(this.target(instance)), serialLog: containerPaths(dir).consoleLog, vnc: undefined };
  }

  async sample(instance: Instance): Promise<DriverSample> {
    const stats = await lxcStats(this.target(instance));
    return {
      ...(stats.cpuNs === undefined ? {} : { cpuSeconds: stats.cpuNs / 1e9 }),
      ...(stats.memoryBytes === undefined ? {} : { rssBytes: stats.memoryBytes }),
      block: [],
    };
  }

  execArgv(instance: Instance, command: string[]): string[] {
    return lxcAttachArgv(this.target(instance), command);
  }
}

/** Unprivileged containers need the host to grant root their id range (LXC's idmap): says so clearly when it does not. */
export function assertSubordinateIds(base: number): void {
  const missing = subordinateIdsMissing(base, ID_COUNT, { subuid: readOrEmpty('/etc/subuid'), subgid: readOrEmpty('/etc/subgid') });
  if (missing.length === 0) return;
  const files = missing.map((f) => `/etc/${f}`).join(' and ');
  throw new VirtnodeError('HOST_UNSUPPORTED', `unprivileged containers need root:${base}:${ID_COUNT} in ${files}`, {
    hint: `add the line root:${base}:${ID_COUNT} to ${files} (scripts/setup.sh does), or launch with --privileged`,
  });
}

/** The last ERROR lines LXC logged, without their prefixes (the first one usually names the cause). */
function lxcErrors(log: string): string | undefined {
  const errors = readOrEmpty(log)
    .split('\n')
    .filter((l) => / ERROR /.test(l))
    .map((l) => l.replace(/^.* ERROR\s+\S+ - \S+ - /, ''));
  return errors[0];
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
