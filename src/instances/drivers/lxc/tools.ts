import { run } from '../../../exec/run.ts';

/**
 * The LXC command-line tools (Debian package `lxc`), always with an explicit lxcpath (`-P`): each state
 * directory's instances directory is its own lxcpath, and an LXC container is named after its instance.
 */
export interface LxcTarget {
  lxcpath: string;
  name: string;
}

const QUICK_MS = 30_000;

function target(t: LxcTarget): string[] {
  return ['-P', t.lxcpath, '-n', t.name];
}

export type LxcState = 'STOPPED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'ABORTING' | 'FREEZING' | 'FROZEN' | 'THAWED';

/** The container's state; STOPPED also when LXC does not know it (no config, or no monitor). */
export async function lxcState(t: LxcTarget): Promise<LxcState> {
  const r = await run(['lxc-info', ...target(t), '-s', '-H'], { timeoutMs: QUICK_MS, okCodes: [0, 1] });
  const state = r.stdout.trim();
  return r.code === 0 && state !== '' ? (state as LxcState) : 'STOPPED';
}

/** The pid of the container's init on the host, while it runs. */
export async function lxcInitPid(t: LxcTarget): Promise<number | undefined> {
  const r = await run(['lxc-info', ...target(t), '-p', '-H'], { timeoutMs: QUICK_MS, okCodes: [0, 1] });
  const pid = Number(r.stdout.trim());
  return r.code === 0 && Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** `lxc-info -S -H`: CPU time (ns) and memory (bytes) of the container's cgroups. */
export async function lxcStats(t: LxcTarget): Promise<{ cpuNs?: number; memoryBytes?: number }> {
  const r = await run(['lxc-info', ...target(t), '-S', '-H'], { timeoutMs: QUICK_MS, okCodes: [0, 1] });
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(r.stdout);
    return m === null ? undefined : Number(m[1]);
  };
  const cpuNs = field('CPU use');
  const memoryBytes = field('Memory use');
  return { ...(cpuNs === undefined ? {} : { cpuNs }), ...(memoryBytes === undefined ? {} : { memoryBytes }) };
}

export async function lxcStart(t: LxcTarget, options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  await run(['lxc-start', ...target(t), '-d'], { timeoutMs: options.timeoutMs, ...(options.signal ? { signal: options.signal } : {}) });
}

/** A clean shutdown (lxc.signal.halt to init) for up to `timeoutS`; false if it was still running then. */
export async function lxcShutdown(t: LxcTarget, timeoutS: number): Promise<boolean> {
  const r = await run(['lxc-stop', ...target(t), '--nokill', '-t', String(timeoutS)], { timeoutMs: (timeoutS + 30) * 1000, okCodes: [0, 1, 2] });
  return r.code === 0;
}

/** Kills the container at once (SIGKILL to init); a container that is not running is fine. */
export async function lxcKill(t: LxcTarget): Promise<void> {
  await run(['lxc-stop', ...target(t), '-k'], { timeoutMs: QUICK_MS, okCodes: [0, 1, 2] });
}

/**
 * Moves a host network interface into the network namespace of the container whose init is `initPid`, named
 * `ifname` there and up. (lxc-device cannot do it for an unprivileged container: it enters the namespace from
 * inside the container's user namespace, where /proc/1/ns/net is not its to open.)
 */
export async function moveLinkIntoNetns(initPid: number, link: string, ifname: string): Promise<void> {
  // Moved and renamed in one request: the container's udev sees the NIC appear as `ifname` (its hotplug rules match that name).
  await run(['ip', 'link', 'set', 'dev', link, 'netns', String(initPid), 'name', ifname], { timeoutMs: QUICK_MS });
  await run(['nsenter', '-t', String(initPid), '-n', 'ip', 'link', 'set', 'dev', ifname, 'up'], { timeoutMs: QUICK_MS });
}

export async function lxcFreeze(t: LxcTarget): Promise<void> {
  await run(['lxc-freeze', ...target(t)], { timeoutMs: QUICK_MS });
}

export async function lxcUnfreeze(t: LxcTarget): Promise<void> {
  await run(['lxc-unfreeze', ...target(t)], { timeoutMs: QUICK_MS });
}

/** argv that runs `command` in the container as root, with its exit code (the container's environment cleared). */
export function lxcAttachArgv(t: LxcTarget, command: string[]): string[] {
  return ['lxc-attach', ...target(t), '--clear-env', '--set-var', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--', ...command];
}

/** argv attached to the container's console (/dev/console in it, tty 0); stdin and stdout are the console. */
export function lxcConsoleArgv(t: LxcTarget): string[] {
  return ['lxc-console', ...target(t), '-t', '0'];
}

/** The monitor process of a running container: its command line is `[lxc monitor] LXCPATH NAME`. */
export function parseMonitorCmdline(cmdline: string): LxcTarget | undefined {
  const m = /^\[lxc monitor\] (.+) ([^ ]+)$/.exec(cmdline.replace(/\0+$/, ''));
  return m === null ? undefined : { lxcpath: m[1]!, name: m[2]! };
}
