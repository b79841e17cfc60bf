/**
 * An etcd member run by virtnode: a child of the daemon (Debian's /usr/bin/etcd), its data under the state
 * directory, TLS for clients and peers with client certificates from the cluster CA, restarted when it dies,
 * stopped cleanly (SIGTERM: a leader hands over at once). A member left running by a killed daemon is found by its
 * pidfile and stopped before a new one starts on the same data.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { VirtnodeError } from '../lib/errors.ts';
import type { EtcdTls } from './etcd-kv.ts';

export const ETCD_BINARY = '/usr/bin/etcd';

export interface EtcdMemberConfig {
  /** The member's name: the host's name in the cluster. */
  name: string;
  /** Its directory: data in `data/`, `etcd.log`, `etcd.pid`. */
  dir: string;
  clientUrl: string;
  peerUrl: string;
  /** `name=peerUrl,...` of every member including this one (used only while the data directory is new). */
  initialCluster: string;
  initialState: 'new' | 'existing';
  clusterToken: string;
  tls: EtcdTls;
  /** Faster elections for tests (ms); etcd's defaults otherwise. */
  electionTimeoutMs?: number;
  /** Revoked certificates (a CRL, read by etcd on each new client and peer connection; it must exist). */
  crlFile?: string;
  /** Quorum-loss recovery: start as a one-member cluster on the existing data (`--force-new-cluster`). */
  forceNewCluster?: boolean;
}

export function etcdArgv(c: EtcdMemberConfig): string[] {
  const argv = [
    `--name=${c.name}`,
    `--data-dir=${join(c.dir, 'data')}`,
    `--listen-client-urls=${c.clientUrl}`,
    `--advertise-client-urls=${c.clientUrl}`,
    `--listen-peer-urls=${c.peerUrl}`,
    `--initial-advertise-peer-urls=${c.peerUrl}`,
    `--initial-cluster=${c.initialCluster}`,
    `--initial-cluster-state=${c.initialState}`,
    `--initial-cluster-token=${c.clusterToken}`,
    '--client-cert-auth',
    `--trusted-ca-file=${c.tls.ca}`,
    `--cert-file=${c.tls.cert}`,
    `--key-file=${c.tls.key}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${c.tls.ca}`,
    `--peer-cert-file=${c.tls.cert}`,
    `--peer-key-file=${c.tls.key}`,
    '--log-level=warn',
    '--logger=zap',
    // A member cut off and back (higher term) must not depose a healthy leader: that would stall every host's
    // lease renewal for an election and could fence healthy hosts.
    '--pre-vote=true',
  ];
  if (c.forceNewCluster === true) argv.push('--force-new-cluster');
  if (c.crlFile !== undefined) argv.push(`--client-crl-file=${c.crlFile}`, `--peer-crl-file=${c.crlFile}`);
  if (c.electionTimeoutMs !== undefined) argv.push(`--election-timeout=${c.electionTimeoutMs}`, `--heartbeat-interval=${Math.max(10, Math.round(c.electionTimeoutMs / 10))}`);
  return argv;
}

/** GET /health over TLS with the member's own client certificate: true when it answers healthy. */
export function etcdHealthy(clientUrl: string, tls: EtcdTls, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL('/health', clientUrl);
    const req = request(url, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isEtcd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === ETCD_BINARY;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export interface EtcdMemberEvents {
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
  onRestart?: (attempt: number) => void;
}

export class EtcdMemberProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  readonly config: EtcdMemberConfig;
  private readonly events: EtcdMemberEvents;

  constructor(config: EtcdMemberConfig, events: EtcdMemberEvents = {}) {
    this.config = config;
    this.events = events;
  }

  get pidFile(): string {
    return join(this.config.dir, 'etcd.pid');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How many times it was restarted after dying on its own. */
  get restartCount(): number {
    return this.restarts;
  }

  /** Starts the member and waits until it answers healthy (a new cluster's member waits for its quorum). */
  async start(timeoutMs = 30_000): Promise<void> {
    if (!existsSync(ETCD_BINARY)) throw new VirtnodeError('MISSING_PROGRAM', `${ETCD_BINARY} not found`, { hint: 'install it with: apt-get install etcd-server' });
    mkdirSync(this.config.dir, { recursive: true, mode: 0o700 });
    await this.stopStale();
    this.stopping = false;
    this.spawnChild();
    const deadline = Date.now() + timeoutMs;
    while (!(await etcdHealthy(this.config.clientUrl, this.config.tls, 1000))) {
      if (Date.now() > deadline) {
        await this.stop();
        throw new VirtnodeError('TIMEOUT', `etcd member ${this.config.name} did not become healthy at ${this.config.clientUrl} in ${timeoutMs / 1000} s`, {
          hint: `see ${join(this.config.dir, 'etcd.log')}`,
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** A member a killed daemon left behind (same data directory) is stopped first. */
  private async stopStale(): Promise<void> {
    if (!existsSync(this.pidFile)) return;
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid) && isEtcd(pid)) {
      process.kill(pid, 'SIGTERM');
      if (!(await waitGone(pid, 10_000))) process.kill(pid, 'SIGKILL');
      await waitGone(pid, 5000);
    }
    rmSync(this.pidFile, { force: true });
  }

  private spawnChild(): void {
    const log = openSync(join(this.config.dir, 'etcd.log'), 'a', 0o600);
    try {
      const child = spawn(ETCD_BINARY, etcdArgv(this.config), { stdio: ['ignore', log, log] });
      this.child = child;
      if (child.pid !== undefined) writeFileSync(this.pidFile, `${child.pid}\n`, { mode: 0o600 });
      child.on('error', () => undefined);
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        this.events.onExit?.(code, signal);
        if (this.stopping) return;
        // Died on its own: start it again, backing off up to 30 s.
        this.restarts++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(6, this.restarts - 1));
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (this.stopping) return;
          this.events.onRestart?.(this.restarts);
          this.spawnChild();
        }, delay);
      });
    } finally {
      closeSync(log);
    }
  }

  /** SIGTERM, then SIGKILL after the timeout; no restart after this. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    rmSync(this.pidFile, { force: true });
  }
}
