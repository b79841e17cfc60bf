import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../src/lib/ports.ts';

export interface TestEtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  child: ChildProcess;
  output: () => string;
}

export interface TestEtcd {
  members: TestEtcdMember[];
  clientUrls: string[];
  dir: string;
  /** SIGKILLs one member (by name) and waits until it is gone. */
  kill: (name: string) => Promise<void>;
  /** Kills every member and removes the data. Safe to call twice. */
  stop: () => Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/** A plain-HTTP etcd cluster of `size` members of Debian's /usr/bin/etcd on 127.0.0.1 (free ports), for tests. */
export async function startTestEtcd(size = 1, options: { electionMs?: number } = {}): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-etcd-'));
  const ports = await Promise.all(Array.from({ length: size * 2 }, () => freeLoopbackPort()));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peer = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members: TestEtcdMember[] = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[2 * i]}`;
    const argv = [
      `--name=${name}`,
      `--data-dir=${join(dir, name)}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peer(i)}`,
      `--initial-advertise-peer-urls=${peer(i)}`,
      `--initial-cluster=${initial}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=test-${process.pid}`,
      `--heartbeat-interval=${Math.round((options.electionMs ?? 1000) / 10)}`,
      `--election-timeout=${options.electionMs ?? 1000}`,
      '--log-level=warn',
    ];
    const child = spawn('/usr/bin/etcd', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return { name, clientUrl, peerUrl: peer(i), child, output: () => out };
  });
  const stop = async () => {
    for (const m of members) m.child.kill('SIGKILL');
    await Promise.all(members.map((m) => exited(m.child)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 20_000;
    for (const m of members) {
      for (;;) {
        if (m.child.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.output()}`);
        const ok = await fetch(`${m.clientUrl}/health`).then((r) => r.ok, () => false);
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`etcd ${m.name} not healthy in time: ${m.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    members,
    clientUrls: members.map((m) => m.clientUrl),
    dir,
    kill: async (name) => {
      const m = members.find((x) => x.name === name)!;
      m.child.kill('SIGKILL');
      await exited(m.child);
    },
    stop,
  };
}
