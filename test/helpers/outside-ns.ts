import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridgeName, homeTag, nftTableName } from '../../src/network/names.ts';
import { dnsmasqReadableDir } from '../../src/network/dnsmasq-user.ts';

export interface Outside {
  /** The network namespace standing in for "the outside". */
  netns: string;
  /** The address of its HTTP service, reachable from the test's namespace through the veth pair. */
  address: string;
  port: number;
  /** What GET / serves. */
  body: string;
  remove: () => void;
}

/**
 * "The outside" for network tests: a network namespace of its own, joined to the test's namespace by a veth pair,
 * with a small HTTP service on its veth address. Names are unique per call (test files run in parallel).
 * `remove` is safe to call more than once and after a partial setup.
 */
export async function createOutside(options: { hostAddress: string; outsideAddress: string; prefix: number; port?: number }): Promise<Outside> {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const netns = `vntest-${id}`;
  const hostVeth = `vnvh${id}`.slice(0, 15);
  const port = options.port ?? 8080;
  const body = `hello from the outside ${id}`;
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-outside-'));
  let server: ChildProcess | undefined;
  const remove = () => {
    server?.kill('SIGKILL');
    try {
      execFileSync('ip', ['link', 'del', hostVeth], { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
    try {
      execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeFileSync(join(dir, 'index.html'), `${body}\n`);
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    ip('netns', 'add', netns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    ip('addr', 'add', `${options.hostAddress}/${options.prefix}`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    ip('-n', netns, 'addr', 'add', `${options.outsideAddress}/${options.prefix}`, 'dev', 'eth0');
    ip('-n', netns, 'link', 'set', 'eth0', 'up');
    server = spawn('ip', ['netns', 'exec', netns, 'busybox', 'httpd', '-f', '-p', `${options.outsideAddress}:${port}`, '-h', dir], { stdio: 'ignore' });
    // Wait until it answers.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const r = await fetch(`http://${options.outsideAddress}:${port}/`, { signal: AbortSignal.timeout(1_000) });
        if ((await r.text()).includes(body)) break;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`the outside service on ${options.outsideAddress}:${port} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    remove();
    throw e;
  }
  return { netns, address: options.outsideAddress, port, body, remove };
}

/**
 * Host-side leftovers of one state directory's networking, for "nothing remains" checks: links carrying its tag
 * (bridges, taps), the named bridges and nft tables of its networks, its dnsmasq processes. Other test files'
 * networks live in the same namespace, so only what belongs to `home` and `networkIds` is looked at.
 */
export function networkLeftovers(home: string, networkIds: string[]): { links: string[]; nftTables: string[]; dnsmasq: number[]; dnsmasqDirs?: string[] } {
  const tag = homeTag(home);
  const links = (JSON.parse(execFileSync('ip', ['-json', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string; ifalias?: string }>)
    .filter((l) => (l.ifalias ?? '').startsWith(tag) || networkIds.some((id) => l.ifname === bridgeName(id)))
    .map((l) => l.ifname);
  const tables = JSON.parse(execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8' }) || '{}') as { nftables?: Array<{ table?: { name: string } }> };
  const wanted = new Set(networkIds.map(nftTableName));
  const nftTables = (tables.nftables ?? []).map((e) => e.table?.name).filter((n): n is string => n !== undefined && wanted.has(n));
  const dnsmasqDirs = networkIds.map(dnsmasqReadableDir).filter((d) => existsSync(d));
  return { links, nftTables, dnsmasq: dnsmasqUnder(home), ...(dnsmasqDirs.length === 0 ? {} : { dnsmasqDirs }) };
}

function dnsmasqUnder(home: string): number[] {
  let list = '';
  try {
    list = execFileSync('pgrep', ['-f', '--', `--conf-file=${home}/`], { encoding: 'utf8' });
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
  return list.split('\n').filter((l) => l.trim() !== '').map(Number);
}
