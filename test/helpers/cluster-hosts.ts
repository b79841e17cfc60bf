import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterStatusView } from '../../src/api/contracts/cluster.ts';
import type { InstanceView } from '../../src/api/schemas.ts';
import type { ClusterConfig } from '../../src/cluster/model.ts';
import { daemonAnswers } from '../../src/client/http.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { openDb } from '../../src/store/db.ts';
import { InstanceRepository } from '../../src/store/instances.ts';
import { TemplateRepository } from '../../src/store/templates.ts';
import { type CliResult, REPO_ROOT, VIRTNODE_BIN, qemuPidsUnder, virtnode } from './cli.ts';
import { eventually } from './daemon.ts';
import { testGuest } from './test-guest.ts';

/**
 * Simulated hosts for cluster tests: each a network namespace with its own state directory and `virtnode daemon`,
 * joined by a veth to one bridge in a "switch" namespace (one L2 segment, 10.N.0.0/24). The test's own namespace
 * reaches each daemon through its UNIX socket. `destroy` removes everything, whatever state it is in.
 */
export interface SimHost {
  name: string;
  netns: string;
  address: string;
  home: string;
  daemon: ChildProcess | undefined;
  output: () => string;
  /**
   * Waits until the daemon's output has `text` (10 s by default). A daemon logs what it did after doing it, so a
   * test that saw the effect may still be a moment ahead of the line.
   */
  logged: (text: string, timeoutMs?: number) => Promise<void>;
  /** The CLI against this host's daemon. */
  cli: (args: string[], options?: { timeoutMs?: number }) => Promise<CliResult>;
  /** Starts `virtnode daemon` in the host's namespace, with `args` added (e.g. a TCP listener) and `env` over the cluster's. */
  startDaemon: (args?: string[], env?: Record<string, string>) => Promise<void>;
  stopDaemon: (signal?: NodeJS.Signals) => Promise<void>;
  /** The etcd member's pid, from its pidfile. */
  etcdPid: () => number | undefined;
}

export interface SimCluster {
  hosts: SimHost[];
  /**
   * Puts the test's own namespace on the hosts' segment (a veth to the switch, gone with it) so that a client
   * here, such as a browser, reaches the hosts' addresses. Answers the address it got.
   */
  attachTester: () => string;
  /**
   * Gives a host a bridge `bridge` on the switch's segment (a second veth, `up0` in the host, enslaved to it), as a
   * host's bridge over its uplink would be: guests on that bridge on any host share one L2 with the switch.
   */
  bridgeOnSwitch: (h: SimHost, bridge: string) => void;
  /** The switch's namespace (its bridge is br0). */
  switchNetns: string;
  /** The first three octets of the segment's addresses (10.N.0): hosts are .11 and up, the tester .254. */
  segment: string;
  destroy: () => Promise<void>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const quiet = (f: () => void) => {
  try {
    f();
  } catch {
    /* gone already */
  }
};

function dnsmasqPidsUnder(home: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', '--', `dnsmasq --conf-file=${home}/`], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() !== '').map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function createSimHosts(count: number, options: { subnet?: number; env?: Record<string, string> } = {}): Promise<SimCluster> {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  const net = options.subnet ?? 60 + Math.floor(Math.random() * 100);
  const sw = `vnsw-${id}`;
  const hosts: SimHost[] = [];
  const destroy = async () => {
    for (const h of hosts) await h.stopDaemon('SIGTERM').catch(() => undefined);
    for (const h of hosts) {
      // Guests outlive their daemon (as on a real host); here they go with the simulated host.
      for (const q of qemuPidsUnder(h.home)) quiet(() => process.kill(q, 'SIGKILL'));
      // So do the dnsmasqs of its networks (they would keep the namespace alive).
      for (const d of dnsmasqPidsUnder(h.home)) quiet(() => process.kill(d, 'SIGKILL'));
      const pid = h.etcdPid();
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
      quiet(() => ip('netns', 'del', h.netns));
      rmSync(h.home, { recursive: true, force: true });
    }
    quiet(() => ip('netns', 'del', sw));
  };
  try {
    ip('netns', 'add', sw);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    for (let i = 0; i < count; i++) {
      const name = `h${i + 1}`;
      const netns = `vnh-${id}-${i + 1}`;
      const address = `10.${net}.0.${11 + i}`;
      const home = mkdtempSync(join(tmpdir(), `virtnode-${name}-`));
      ip('netns', 'add', netns);
      ip('-n', netns, 'link', 'set', 'lo', 'up');
      ip('-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i + 1}`, 'netns', sw);
      ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', netns, 'link', 'set', 'eth0', 'up');
      ip('-n', sw, 'link', 'set', `p${i + 1}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `p${i + 1}`, 'up');
      let out = '';
      const host: SimHost = {
        name,
        netns,
        address,
        home,
        daemon: undefined,
        output: () => out,
        logged: async (text, timeoutMs = 10_000) => {
          await eventually(() => (out.includes(text) ? true : undefined), timeoutMs, `${name} to log ${text}`);
        },
        cli: (args, o = {}) => virtnode(home, args, { ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) }),
        startDaemon: async (args = [], env = {}) => {
          const socket = join(home, 'virtnode.sock');
          const child = spawn('ip', ['netns', 'exec', netns, VIRTNODE_BIN, 'daemon', ...args], {
            env: { ...process.env, VIRTNODE_HOME: home, VIRTNODE_CLUSTER_LEASE_TTL: '3', VIRTNODE_ETCD_ELECTION_MS: '500', ...options.env, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          host.daemon = child;
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
          const deadline = Date.now() + 30_000;
          while (!(await daemonAnswers(socket, 500))) {
            if (child.exitCode !== null) throw new Error(`daemon of ${name} exited: ${out}`);
            if (Date.now() > deadline) throw new Error(`daemon of ${name} did not answer: ${out}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        },
        stopDaemon: async (signal = 'SIGTERM') => {
          const child = host.daemon;
          host.daemon = undefined;
          if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(timer);
        },
        etcdPid: () => {
          const f = join(home, 'cluster', 'etcd', 'etcd.pid');
          return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : undefined;
        },
      };
      hosts.push(host);
    }
  } catch (e) {
    await destroy();
    throw e;
  }
  const attachTester = () => {
    const address = `10.${net}.0.254`;
    const link = `vt-${id}`;
    ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'tester', 'netns', sw);
    ip('-n', sw, 'link', 'set', 'tester', 'master', 'br0');
    ip('-n', sw, 'link', 'set', 'tester', 'up');
    ip('addr', 'add', `${address}/24`, 'dev', link);
    ip('link', 'set', link, 'up');
    return address;
  };
  const bridgeOnSwitch = (h: SimHost, bridge: string) => {
    const port = `u${h.name}`;
    ip('-n', h.netns, 'link', 'add', bridge, 'type', 'bridge');
    ip('-n', h.netns, 'link', 'set', bridge, 'up');
    ip('-n', h.netns, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', port, 'netns', sw);
    ip('-n', h.netns, 'link', 'set', 'up0', 'master', bridge);
    ip('-n', h.netns, 'link', 'set', 'up0', 'up');
    ip('-n', sw, 'link', 'set', port, 'master', 'br0');
    ip('-n', sw, 'link', 'set', port, 'up');
  };
  return { hosts, attachTester, bridgeOnSwitch, switchNetns: sw, segment: `10.${net}.0`, destroy };
}

/** The CLI on a host, which must succeed: its stdout. */
export async function ok(h: SimHost, args: string[]): Promise<string> {
  const r = await h.cli(args, { timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`${h.name}: virtnode ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export async function statusOn(h: SimHost): Promise<ClusterStatusView> {
  return JSON.parse(await ok(h, ['cluster', 'ls', '--format', 'json'])) as ClusterStatusView;
}

export async function listOn(h: SimHost): Promise<InstanceView[]> {
  return JSON.parse(await ok(h, ['list', '--format', 'json'])) as InstanceView[];
}

/** The first host forms a cluster, the others join it (as h2, h3...); resolves once all are online. */
export async function formCluster(hosts: SimHost[]): Promise<void> {
  await ok(hosts[0]!, ['cluster', 'init', '--address', hosts[0]!.address, '--name', hosts[0]!.name]);
  for (const h of hosts.slice(1)) {
    const token = (await ok(hosts[0]!, ['cluster', 'add', h.name])).trim();
    await ok(h, ['cluster', 'join', token, '--address', h.address]);
  }
  await eventually(async () => ((await statusOn(hosts.at(-1)!)).hosts.filter((x) => x.state === 'online').length === hosts.length ? true : undefined), 20_000, 'all hosts online');
}

/**
 * A template on a host whose boot is the tiny test guest (kernel + initramfs) over a small empty disk: the host's
 * own, or `disk` (made if absent), which several hosts may share as shared storage would hold it.
 */
export function installTinyTemplate(h: SimHost, options: { disk?: string } = {}): void {
  const guest = testGuest();
  const disk = options.disk ?? join(h.home, 'tiny.qcow2');
  if (!existsSync(disk)) execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  const db = openDb(statePaths(h.home).db);
  try {
    new TemplateRepository(db).insert({
      name: 'tiny',
      diskPath: disk,
      format: 'qcow2',
      virtualSize: 16 * 1024 * 1024,
      sha256: '0'.repeat(64),
      source: 'test',
      defaults: { cpus: 1, memoryMiB: 128, accel: 'tcg', boot: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline }, networks: ['user'] },
      sealMethod: 'offline',
      sealReport: [],
    });
  } finally {
    db.close();
  }
}

export interface RestAnswer {
  status: number;
  body: { id?: string; state?: string; error?: { code: string; message: string; field?: string }; [k: string]: unknown };
}

/** A request over the host daemon's UNIX socket: status and parsed body. */
export function requestOn(h: SimHost, method: string, path: string, body?: unknown): Promise<RestAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    const req = request({ socketPath: join(h.home, 'virtnode.sock'), path, method, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as RestAnswer['body'] }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A key of the cluster's etcd, read with etcdctl inside a host's namespace and with its client certificate. */
export function etcdGet<T>(h: SimHost, key: string): T | undefined {
  const cfg = JSON.parse(readFileSync(join(h.home, 'cluster', 'cluster.json'), 'utf8')) as ClusterConfig;
  const { ca, cert, key: tlsKey } = cfg.etcd.tls;
  const out = execFileSync('ip', ['netns', 'exec', h.netns, 'etcdctl', `--endpoints=${cfg.etcd.urls.join(',')}`, '--cacert', ca, '--cert', cert, '--key', tlsKey, 'get', key, '--print-value-only'], { encoding: 'utf8' }).trim();
  return out === '' ? undefined : (JSON.parse(out) as T);
}

/**
 * `count` hosts with their daemons running and the tiny guest installed as a template on each. One vCPU per host
 * CPU unless told (no overcommit), so that a host's room runs out after a few small guests.
 */
export async function tinyGuestHosts(count: number, options: { cpuOvercommit?: number; subnet?: number; templateDisk?: string; env?: Record<string, string> } = {}): Promise<SimCluster> {
  const { templateDisk, env, cpuOvercommit, ...rest } = options;
  const sim = await createSimHosts(count, { ...rest, env: { VIRTNODE_CLUSTER_CPU_OVERCOMMIT: String(cpuOvercommit ?? 1), ...env } });
  try {
    await Promise.all(sim.hosts.map((x) => x.startDaemon()));
    for (const x of sim.hosts) installTinyTemplate(x, templateDisk === undefined ? {} : { disk: templateDisk });
  } catch (e) {
    // The caller gets no cluster to destroy: nothing of it is left behind.
    await sim.destroy();
    throw e;
  }
  return sim;
}

/** Keeps each host's daemon output as test-results/<label>-<host>.log, then removes the hosts. */
export async function destroyKeepingLogs(sim: SimCluster | undefined, label: string): Promise<void> {
  if (sim === undefined) return;
  mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true });
  for (const x of sim.hosts) writeFileSync(join(REPO_ROOT, 'test-results', `${label}-${x.name}.log`), x.output());
  await sim.destroy();
}

/** The record in a host's own store (not the cluster's view). */
export function localRecord(h: SimHost, name: string): unknown {
  const db = openDb(statePaths(h.home).db);
  try {
    return new InstanceRepository(db).get(name);
  } finally {
    db.close();
  }
}

/** An instance's directory on a host. */
export const instanceDirOn = (h: SimHost, name: string): string => statePaths(h.home).instanceDir(name);

/** Waits until `x`'s daemon has died of a fail point's SIGKILL (VIRTNODE_FAILPOINT, src/lib/failpoint.ts). */
export async function diedAtFailpoint(x: SimHost): Promise<void> {
  const child = x.daemon!;
  await eventually(() => (child.exitCode !== null || child.signalCode !== null ? true : undefined), 120_000, `${x.name}'s daemon to die at the fail point`);
  if (child.signalCode !== 'SIGKILL') throw new Error(`${x.name}'s daemon ended with ${child.signalCode ?? `exit ${child.exitCode}`}, not the fail point's SIGKILL`);
  x.daemon = undefined;
}

/** A whole simulated host dies at once: its daemon, its guests' QEMUs and its etcd member, all SIGKILLed. */
export async function crashHost(h: SimHost): Promise<void> {
  const etcd = h.etcdPid();
  await h.stopDaemon('SIGKILL');
  for (const pid of qemuPidsUnder(h.home)) process.kill(pid, 'SIGKILL');
  if (etcd !== undefined) process.kill(etcd, 'SIGKILL');
}

/**
 * Three tiny-guest hosts around `shared`, a directory every host sees at the same path (a shared-dir pool's mount):
 * the template disk in `shared/base`, an empty `shared/pool`, leases of `ttlSeconds`; the cluster formed.
 */
export async function sharedDirCluster(shared: string, ttlSeconds: number): Promise<SimCluster> {
  mkdirSync(join(shared, 'pool'));
  mkdirSync(join(shared, 'base'));
  const sim = await tinyGuestHosts(3, { templateDisk: join(shared, 'base', 'tiny.qcow2'), env: { VIRTNODE_CLUSTER_LEASE_TTL: String(ttlSeconds) } });
  try {
    await formCluster(sim.hosts);
  } catch (e) {
    await sim.destroy();
    throw e;
  }
  return sim;
}
