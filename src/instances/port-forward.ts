import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { run } from '../exec/run.ts';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { parseIpv4 } from '../network/ipv4.ts';
import { humanMonitorCommand } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { ACTIVE_STATES, type Instance, type PortForwardSpec, USER_NETWORK } from './model.ts';
import { observeInstance } from './observe.ts';
import { runtimePaths } from './runtime.ts';
import type { InstanceService, OperationOptions } from './service.ts';

const DEFAULT_ADDRESS = '127.0.0.1';

/** `HOST:GUEST[/tcp|udp]`, e.g. 8080:80, 5353:53/udp. */
export function parsePortForward(text: string, address: string | undefined): PortForwardSpec {
  const match = /^(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text.trim());
  if (match === null) throw invalid('ports', `"${text}" is not HOST:GUEST[/tcp|udp]`, 'e.g. 8080:80 or 5353:53/udp');
  const hostPort = Number(match[1]);
  const guestPort = Number(match[2]);
  for (const [what, port] of [['host', hostPort], ['guest', guestPort]] as const) {
    if (port < 1 || port > 65535) throw invalid('ports', `the ${what} port ${port} is out of range`, 'ports are 1-65535');
  }
  const hostAddress = address ?? DEFAULT_ADDRESS;
  if (parseIpv4(hostAddress) === undefined) throw invalid('--address', `"${hostAddress}" is not an IPv4 address`, 'e.g. 127.0.0.1 (the default) or 0.0.0.0 for every address');
  return { protocol: (match[3] ?? 'tcp') as 'tcp' | 'udp', hostAddress, hostPort, guestPort };
}

function clash(a: { protocol: string; hostAddress: string; hostPort: number }, b: { protocol: string; hostAddress: string; hostPort: number }): boolean {
  const anyAddress = a.hostAddress === '0.0.0.0' || b.hostAddress === '0.0.0.0';
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (anyAddress || a.hostAddress === b.hostAddress);
}

function describe(f: PortForwardSpec): string {
  return `${f.hostAddress}:${f.hostPort}/${f.protocol}`;
}

/** Whether the host port is free right now; when not, which process holds it (from `ss`), if it can tell. */
async function portHolder(f: PortForwardSpec): Promise<string | undefined> {
  const free = await new Promise<boolean>((resolve) => {
    if (f.protocol === 'tcp') {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(f.hostPort, f.hostAddress, () => server.close(() => resolve(true)));
    } else {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(f.hostPort, f.hostAddress, () => socket.close(() => resolve(true)));
    }
  });
  if (free) return undefined;
  try {
    const { stdout } = await run(['ss', '-H', f.protocol === 'tcp' ? '-ltnp' : '-lunp', 'sport', '=', `:${f.hostPort}`], { timeoutMs: 5_000 });
    const users = /users:\(\("([^"]+)",pid=(\d+)/.exec(stdout);
    if (users !== null) return `process ${users[1]} (pid ${users[2]})`;
  } catch {
    /* ss missing or refused: the generic answer below */
  }
  return 'another process';
}

/** Refuses a forward that another instance (its forwards or the SSH forward virtnode gave it) or process holds. */
async function checkFree(service: InstanceService, instance: Instance, f: PortForwardSpec): Promise<void> {
  for (const other of service.repo.list()) {
    for (const existing of other.spec.portForwards ?? []) {
      if (clash(existing, f)) {
        const owner = other.name === instance.name ? 'this instance already' : `instance ${other.name}`;
        throw new VirtnodeError('CONFLICT', `${describe(f)} is already forwarded by ${owner} (to guest port ${existing.guestPort})`, {
          field: 'ports',
          hint: 'choose another host port (see `virtnode port ls NAME`)',
        });
      }
    }
    const ssh = other.spec.ssh;
    if (ssh?.hostPort !== undefined && ACTIVE_STATES.has(other.state) && clash({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: ssh.hostPort }, f)) {
      throw new VirtnodeError('CONFLICT', `${describe(f)} is the SSH forward of instance ${other.name}`, { field: 'ports', hint: 'choose another host port' });
    }
  }
  const holder = await portHolder(f);
  if (holder !== undefined) {
    throw new VirtnodeError('CONFLICT', `${describe(f)} is in use by ${holder}`, { field: 'ports', hint: 'choose another host port, or stop what holds it' });
  }
}

/** QEMU's user-mode netdev, which forwards itself; undefined: forwards are DNAT to the instance's managed address. */
function userNicId(instance: Instance): string | undefined {
  const nic = instance.nics.find((n) => n.network === USER_NETWORK);
  if (nic === undefined) {
    if (!instance.nics.some((n) => n.address !== undefined)) {
      throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} has no user-mode NIC and no address on a managed network to forward ports to`, {
        hint: 'attach a NIC on a nat network (virtnode nic attach NAME NETWORK), or a user-mode NIC to a VM',
      });
    }
    return undefined;
  }
  return `net${nic.index}`;
}

/** HMP reports failures as text, not as a QMP error: `succeeded` tells its success message from an error. */
async function hmp(service: InstanceService, instance: Instance, line: string, succeeded: (out: string) => boolean): Promise<void> {
  const qmp = await QmpConnection.connect(runtimePaths(service.paths.instanceDir(instance.name)).qmp, { timeoutMs: 5_000 });
  try {
    const out = (await humanMonitorCommand(qmp, line)).trim();
    if (!succeeded(out)) throw new VirtnodeError('QMP_COMMAND', `QEMU refused "${line}": ${out}`);
  } finally {
    qmp.close();
  }
}

/** Adds a user-mode port forward: live through QMP when running, and kept for every later start. */
export async function addPortForward(service: InstanceService, name: string, text: string, address: string | undefined, options: OperationOptions = {}): Promise<PortForwardSpec> {
  const forward = parsePortForward(text, address);
  return service.locked(name, 'port add', options, async () => {
    const instance = await observeInstance(service.core, service.mustGet(name));
    const netdev = userNicId(instance);
    await checkFree(service, instance, forward);
    const spec = { ...instance.spec, portForwards: [...(instance.spec.portForwards ?? []), forward] };
    if (instance.state === 'running' || instance.state === 'paused') {
      if (netdev === undefined) await service.networks.syncPortForwards({ ...instance, spec });
      else await hmp(service, instance, `hostfwd_add ${netdev} ${forward.protocol}:${forward.hostAddress}:${forward.hostPort}-:${forward.guestPort}`, (out) => out === '');
    }
    service.repo.updateSpec(name, spec);
    return forward;
  });
}

/** Removes a forward given as HOST[/proto] or HOST:GUEST[/proto]. */
export async function removePortForward(service: InstanceService, name: string, text: string, options: OperationOptions = {}): Promise<PortForwardSpec> {
  const match = /^(\d{1,5})(?::\d{1,5})?(?:\/(tcp|udp))?$/.exec(text.trim());
  if (match === null) throw invalid('ports', `"${text}" is not HOST[/tcp|udp]`, 'e.g. 8080 or 5353/udp');
  const hostPort = Number(match[1]);
  const protocol = match[2] ?? 'tcp';
  return service.locked(name, 'port rm', options, async () => {
    const instance = await observeInstance(service.core, service.mustGet(name));
    const forwards = instance.spec.portForwards ?? [];
    const forward = forwards.find((f) => f.hostPort === hostPort && f.protocol === protocol);
    if (forward === undefined) {
      throw new VirtnodeError('NOT_FOUND', `instance ${name} forwards no host port ${hostPort}/${protocol}`, { field: 'ports', hint: `see \`virtnode port ls ${name}\`` });
    }
    const spec = { ...instance.spec, portForwards: forwards.filter((f) => f !== forward) };
    if (instance.state === 'running' || instance.state === 'paused') {
      const netdev = userNicId(instance);
      if (netdev === undefined) await service.networks.syncPortForwards({ ...instance, spec });
      else await hmp(service, instance, `hostfwd_remove ${netdev} ${forward.protocol}:${forward.hostAddress}:${forward.hostPort}`, (out) => out === '' || /removed/.test(out));
    }
    service.repo.updateSpec(name, spec);
    return forward;
  });
}
