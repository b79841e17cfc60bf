import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, run } from '../exec/run.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { StatePaths } from '../lib/paths.ts';
import { GuestAgent } from '../qmp/guest-agent.ts';
import type { Instance } from './model.ts';
import { runtimePaths } from './runtime.ts';
import { sshArgv } from './ssh.ts';
import type { SshProbeMode } from './ssh-probe.ts';

export type Phase = 'image' | 'disk' | 'seed' | 'booting' | 'ip' | 'ssh' | 'cloud-init' | 'ready';
export type PhaseListener = (phase: Phase, detail: string, elapsedMs: number) => void;

export interface CloudInitResult {
  status: 'done' | 'error' | 'running' | 'unknown';
  datasource: string | undefined;
  detail: string;
}

/** What the guest agent tells about the guest's network (nothing while it does not answer). */
export interface GuestNetworkView {
  /** The first IPv4 address on a non-loopback interface. */
  address: string | undefined;
  /** Whether the NIC with this MAC has an IPv4 address (for the SSH forward: the first user-mode NIC). */
  nicUp: boolean;
}

export async function guestNetwork(paths: StatePaths, instance: Instance, nicMac: string | undefined): Promise<GuestNetworkView> {
  let agent: GuestAgent | undefined;
  try {
    agent = await GuestAgent.connect(runtimePaths(paths.instanceDir(instance.name)).guestAgent, { timeoutMs: 2_000 });
    const interfaces = (await agent.networkGetInterfaces()).filter((i) => i.name !== 'lo');
    const v4 = (i: (typeof interfaces)[number]) => i.ipAddresses.find((a) => a.type === 'ipv4')?.address;
    const mac = nicMac?.toLowerCase();
    return {
      address: interfaces.map(v4).find((a) => a !== undefined),
      nicUp: mac !== undefined && interfaces.some((i) => i.hardwareAddress?.toLowerCase() === mac && v4(i) !== undefined),
    };
  } catch {
    return { address: undefined, nicUp: false };
  } finally {
    agent?.close();
  }
}

/**
 * Waits in the guest, over verified SSH, until cloud-init has finished, and returns its verdict. The wait is a
 * shell loop on the file cloud-init writes last (`/run/cloud-init/result.json`, in a tmpfs: this boot's), not
 * `cloud-init status --wait`: under TCG starting Python costs seconds of the guest's only vCPU while cloud-init's
 * own stages need it. When cloud-init is disabled in this boot, or one of its stages failed before writing that
 * file, cloud-init answers itself (`cloud-init status`).
 */
const CLOUD_INIT_WAIT = [
  'command -v cloud-init >/dev/null || exit 127',
  // cloud-init's units, and those that run its stages in one process when virtnode boots an image it built.
  'units="cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service virtnode-cloud-init.service virtnode-cloud-init-network.service virtnode-cloud-final.service"',
  'while [ ! -e /run/cloud-init/result.json ] && [ ! -e /run/cloud-init/disabled ] && ! systemctl -q is-failed $units 2>/dev/null; do sleep 1; done',
  'if [ -e /run/cloud-init/result.json ]; then echo result.json; cat /run/cloud-init/result.json; else exec cloud-init status --wait --long; fi',
].join('\n');

export async function waitForCloudInit(paths: StatePaths, instance: Instance, timeoutMs: number, signal?: AbortSignal): Promise<CloudInitResult> {
  const argv = sshArgv(paths, instance, ['sh', '-c', CLOUD_INIT_WAIT], { tty: false });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // cloud-init status exits 1 on error (and 2 on recoverable errors in newer releases): still a verdict.
      const { stdout } = await run(argv, { timeoutMs: Math.max(deadline - Date.now(), 1_000), okCodes: [0, 1, 2], ...(signal === undefined ? {} : { signal }) });
      return stdout.startsWith('result.json\n') ? parseCloudInitResult(stdout.slice('result.json\n'.length)) : parseCloudInitStatus(stdout);
    } catch (e) {
      // 255 is ssh's own failure, not the command's: early in boot sshd answers before cloud-init has written the
      // user's key, or restarts under it. Asked again until the deadline; the last failure is what is reported.
      const sshFailed = e instanceof CommandError && e.exitCode === 255 && !e.stderr.includes('Host key verification failed');
      if (!sshFailed || signal?.aborted || Date.now() + SSH_RETRY_MS >= deadline) throw e;
      await sleep(SSH_RETRY_MS);
    }
  }
}

/** cloud-init's result.json: `{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb]...", "errors": [...]}}`. */
export function parseCloudInitResult(text: string): CloudInitResult {
  let v1: { datasource?: unknown; errors?: unknown } | undefined;
  try {
    v1 = (JSON.parse(text) as { v1?: typeof v1 }).v1;
  } catch {
    v1 = undefined;
  }
  if (v1 === undefined || v1 === null || typeof v1 !== 'object') return { status: 'unknown', datasource: undefined, detail: `unreadable result.json: ${text.slice(0, 200)}` };
  const source = typeof v1.datasource === 'string' ? v1.datasource : '';
  const errors = Array.isArray(v1.errors) ? v1.errors.map(String) : [];
  return {
    status: errors.length > 0 ? 'error' : 'done',
    datasource: /DataSource(\w+)/.exec(source)?.[1],
    detail: [source, ...errors].filter(Boolean).join('; '),
  };
}

const SSH_RETRY_MS = 2_000;

/**
 * Runs `true` in the guest over SSH with strict host key checking against virtnode's known_hosts: the guest
 * answers with the host key virtnode made for it and takes virtnode's client key. ssh's own failure (255: sshd not
 * listening yet, or the connection dropped while it restarts) is tried again every `retryMs` until the deadline,
 * except a host key that is not the recorded one.
 */
export async function verifySsh(paths: StatePaths, instance: Instance, deadline: number, signal?: AbortSignal, retryMs = 1_000): Promise<void> {
  const argv = sshArgv(paths, instance, ['true'], { tty: false });
  for (;;) {
    const r = await run(argv, { timeoutMs: Math.max(deadline - Date.now(), 1_000), okCodes: [0, 255], ...(signal === undefined ? {} : { signal }) });
    if (r.code === 0) return;
    if (r.stderr.includes('Host key verification failed')) {
      throw new VirtnodeError('COMMAND_FAILED', `${instance.name} answered SSH with a host key that is not the one virtnode generated for it`, {
        hint: 'the guest is not the instance virtnode launched (or its keys were not written): delete it and launch again',
      });
    }
    if (Date.now() > deadline || signal?.aborted === true) {
      throw new VirtnodeError('TIMEOUT', `SSH to ${instance.name} with its recorded host key did not succeed: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    }
    await sleep(retryMs);
  }
}

/** How often a warm launch's SSH check looks whether the guest shows its network up (the console log: no connection). */
const WARM_NETWORK_POLL_MS = 100;
/** Between a warm launch's SSH tries once the network is up: a try made before sshd listens is refused at once. */
const WARM_SSH_RETRY_MS = 250;

/**
 * verifySsh as soon as the guest's network is up: a warm launch starts this beside the rest of its first boot,
 * and `mode` says when the guest has its address. The login is its own probe: a banner probe before it would cost
 * the guest a whole sshd start of its own (a few tenths of a second under TCG). sshd starts once cloud-init has
 * written the instance's host keys and user, and strict host key checking accepts only the key virtnode generated
 * for this instance, never the template's (whose sshd is stopped and has no keys).
 */
export async function verifySshWhenUp(paths: StatePaths, instance: Instance, deadline: number, mode: () => SshProbeMode, signal?: AbortSignal): Promise<void> {
  while (mode() === 'wait') {
    if (signal?.aborted === true) throw new VirtnodeError('TIMEOUT', 'cancelled');
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `${instance.name} did not show its network up`);
    await sleep(WARM_NETWORK_POLL_MS);
  }
  await verifySsh(paths, instance, deadline, signal, WARM_SSH_RETRY_MS);
}

export function parseCloudInitStatus(text: string): CloudInitResult {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const status = field('status');
  const detail = field('detail') ?? '';
  const errors = /^errors:\s*\n((?:\s+- .*\n?)*)/m.exec(text)?.[1]?.trim();
  const datasource = /DataSource(\w+)/.exec(detail)?.[1];
  return {
    status: status === 'done' || status === 'error' || status === 'running' ? status : 'unknown',
    datasource,
    detail: [detail, errors].filter(Boolean).join('; '),
  };
}
