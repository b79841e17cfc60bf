import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStatusView } from '../../src/api/contracts/cluster.ts';
import { certSerial } from '../../src/cluster/revocation.ts';
import { resolveAccelerator } from '../../src/host/accelerator.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, createSimHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';

const TOKEN_TTL_S = 8;

async function status(h: SimHost): Promise<ClusterStatusView> {
  const r = await h.cli(['cluster', 'ls', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cluster ls on ${h.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClusterStatusView;
}

async function token(from: SimHost, host: string): Promise<string> {
  const r = await from.cli(['cluster', 'add', host]);
  expect(r.stderr).toContain(`On ${host}: virtnode cluster join TOKEN`);
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

describe('forming a cluster of simulated hosts (netns + bridge, real daemons, real etcd)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    sim = await createSimHosts(5, { env: { VIRTNODE_CLUSTER_TOKEN_TTL: String(TOKEN_TTL_S) } });
    h = sim.hosts;
    await Promise.all(h.map((x) => x.startDaemon()));
  });
  afterAll(async () => {
    // The daemons' logs, for a failure's post-mortem.
    mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true });
    for (const x of h ?? []) writeFileSync(join(REPO_ROOT, 'test-results', `cluster-form-${x.name}.log`), x.output());
    await sim?.destroy();
  });

  it('a standalone host is not in a cluster and runs no etcd', async () => {
    const r = await h[0]!.cli(['cluster', 'ls']);
    expect(r.stdout).toBe('This host is standalone (not in a cluster).\n');
    expect(h[0]!.etcdPid()).toBeUndefined();
    const add = await h[0]!.cli(['cluster', 'add', 'h2']);
    expect(add.code).not.toBe(0);
    expect(add.stderr).toContain('error: this host is not in a cluster');
  });

  it('init forms a cluster: CA, certificate (keys 0600), an etcd member, the host recorded and online', async () => {
    const started = Date.now();
    const r = await h[0]!.cli(['cluster', 'init', '--address', h[0]!.address, '--name', 'h1', '--label', 'zone=a']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Formed cluster [0-9a-f-]{36} with h1 \(etcd member on this host\)\n$/);
    console.log(`cluster init: ${Date.now() - started} ms`);
    for (const f of ['cluster/ca/ca.key', 'cluster/tls/host.key', 'cluster/cluster.json']) expect(statSync(join(h[0]!.home, f)).mode & 0o777).toBe(0o600);
    const s = await eventually(async () => {
      const x = await status(h[0]!);
      return x.hosts[0]?.state === 'online' ? x : undefined;
    }, 10_000, 'h1 online');
    expect(s.hosts).toHaveLength(1);
    expect(s.hosts[0]).toMatchObject({ name: 'h1', address: h[0]!.address, etcdMember: true, labels: { zone: 'a' } });
    expect(s.hosts[0]!.capacity!.cpus).toBeGreaterThan(0);
    // What its guests run with: KVM only where a test guest runs under it (ours: TCG, even with a /dev/kvm).
    expect(s.hosts[0]!.capacity!.accelerator).toBe((await resolveAccelerator('auto', { cacheDir: statePaths(h[0]!.home).hostCache })).accel);
    expect(s.hosts[0]!.capacity!.pools.map((p) => p.name)).toContain('default');
    expect(s.etcd).toMatchObject({ external: false, leader: 'h1' });
    const again = await h[0]!.cli(['cluster', 'init', '--address', h[0]!.address]);
    expect(again.stderr).toMatch(/^error: this host is in cluster .* already \(as h1\)/);
  });

  it('the next two hosts join as etcd members, the fourth as a client only', async () => {
    for (const [i, name] of [[1, 'h2'], [2, 'h3'], [3, 'h4']] as const) {
      tokens[name] = await token(h[0]!, name);
      const started = Date.now();
      const r = await h[i]!.cli(['cluster', 'join', tokens[name], '--address', h[i]!.address, '--label', `zone=${name === 'h4' ? 'b' : 'a'}`]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(new RegExp(`^Joined cluster [0-9a-f-]{36} as ${name}${name === 'h4' ? '' : ' \\(etcd member\\)'}\\n$`));
      console.log(`join ${name}: ${Date.now() - started} ms`);
    }
    expect(h[3]!.etcdPid()).toBeUndefined();
    const s = await eventually(async () => {
      const x = await status(h[3]!);
      return x.hosts.length === 4 && x.hosts.every((y) => y.state === 'online') ? x : undefined;
    }, 15_000, 'four hosts online');
    expect(s.hosts.map((x) => [x.name, x.etcdMember])).toEqual([['h1', true], ['h2', true], ['h3', true], ['h4', false]]);
    expect(s.etcd.members.map((m) => m.name).sort()).toEqual(['h1', 'h2', 'h3']);
    expect(s.etcd.members.filter((m) => m.leader)).toHaveLength(1);
    // The first host learned the members that came after it (it reaches etcd while any member runs).
    const h1Config = JSON.parse(readFileSync(join(h[0]!.home, 'cluster', 'cluster.json'), 'utf8')) as { etcd: { urls: string[] } };
    expect(h1Config.etcd.urls).toEqual([h[0]!, h[1]!, h[2]!].map((x) => `https://${x.address}:2379`).sort());
    // Any host answers with the same view.
    expect((await status(h[1]!)).hosts.map((x) => x.name)).toEqual(['h1', 'h2', 'h3', 'h4']);
    const table = (await h[1]!.cli(['cluster', 'ls'])).stdout;
    expect(table).toMatch(/^HOST\s+ADDRESS\s+STATE\s+ETCD/);
    expect(table).toContain('etcd: 3 member(s)');
  });

  it('a used, a forged or an expired token and a clock far off are refused, and nothing changes', async () => {
    const h5 = h[4]!;
    const used = await h5.cli(['cluster', 'join', tokens['h2']!, '--address', h5.address]);
    expect(used.code).not.toBe(0);
    expect(used.stderr).toContain('error: token: the join token is unknown, used or expired');

    const fresh = await token(h[0]!, 'h5');
    const raw = JSON.parse(Buffer.from(fresh.slice('vnjoin1.'.length), 'base64url').toString()) as Record<string, string>;
    const forged = `vnjoin1.${Buffer.from(JSON.stringify({ ...raw, s: 'A'.repeat(32) })).toString('base64url')}`;
    const f = await h5.cli(['cluster', 'join', forged, '--address', h5.address]);
    expect(f.stderr).toContain('error: token: the join token is forged');
    const wrongCa = `vnjoin1.${Buffer.from(JSON.stringify({ ...raw, f: raw['f']!.replace(/^../, raw['f']!.startsWith('00') ? '11' : '00') })).toString('base64url')}`;
    const w = await h5.cli(['cluster', 'join', wrongCa, '--address', h5.address]);
    expect(w.stderr).toContain('does not present the cluster CA the token pins');
    const garbage = await h5.cli(['cluster', 'join', 'hello', '--address', h5.address]);
    expect(garbage.stderr).toContain('error: token: not a virtnode join token');

    const skewed = execFileSync('ip', ['netns', 'exec', h5.netns, process.execPath, join(REPO_ROOT, 'test/helpers/skewed-join.ts'), fresh, h5.address, String(3600_000)], { encoding: 'utf8' });
    expect(skewed).toMatch(/^clock: the joining host's clock is 3600 s off h1's/);
    expect(existsSync(join(h5.home, 'cluster', 'cluster.json'))).toBe(false);

    // The token was not used by any of that; after its TTL it is gone.
    await new Promise((r) => setTimeout(r, TOKEN_TTL_S * 1000 + 1500));
    const expired = await h5.cli(['cluster', 'join', fresh, '--address', h5.address]);
    expect(expired.stderr).toMatch(/error: token: the join token (is unknown, used or expired|expired at)/);
    expect(existsSync(join(h5.home, 'cluster', 'cluster.json'))).toBe(false);
    expect((await status(h[0]!)).hosts.map((x) => x.name)).toEqual(['h1', 'h2', 'h3', 'h4']);
  });

  it('a host whose daemon is SIGKILLed shows offline once its lease expires, online again when it returns', async () => {
    await h[3]!.stopDaemon('SIGKILL');
    const killed = Date.now();
    await eventually(async () => ((await status(h[0]!)).hosts.find((x) => x.name === 'h4')?.state === 'offline' ? true : undefined), 15_000, 'h4 offline');
    const offlineMs = Date.now() - killed;
    console.log(`h4 offline ${offlineMs} ms after SIGKILL (lease TTL 3 s)`);
    expect(offlineMs).toBeLessThan(3000 + 2500);
    await h[3]!.startDaemon();
    await eventually(async () => ((await status(h[0]!)).hosts.find((x) => x.name === 'h4')?.state === 'online' ? true : undefined), 15_000, 'h4 online again');
  });

  it('remove: refused while online; an offline host, and a dead etcd member, are removed and the cluster goes on', async () => {
    const online = await h[0]!.cli(['cluster', 'remove', 'h4']);
    expect(online.stderr).toContain('error: host h4 is online: stop its daemon first, or give --force');
    const missing = await h[0]!.cli(['cluster', 'remove', 'nope']);
    expect(missing.stderr).toContain('error: no host nope in the cluster');
    await h[3]!.stopDaemon('SIGTERM');
    // A clean stop revokes the lease: offline at once.
    expect((await status(h[0]!)).hosts.find((x) => x.name === 'h4')?.state).toBe('offline');
    expect((await h[0]!.cli(['cluster', 'remove', 'h4'])).stdout).toBe('Removed host h4 from the cluster\n');

    // h3 dies for good, daemon and etcd member at once.
    const etcd3 = h[2]!.etcdPid()!;
    await h[2]!.stopDaemon('SIGKILL');
    process.kill(etcd3, 'SIGKILL');
    await eventually(async () => ((await status(h[0]!)).hosts.find((x) => x.name === 'h3')?.state === 'offline' ? true : undefined), 20_000, 'h3 offline');
    const r = await h[0]!.cli(['cluster', 'remove', 'h3']);
    expect(r.stderr).toBe('');
    const s = await status(h[1]!);
    expect(s.hosts.map((x) => x.name)).toEqual(['h1', 'h2']);
    expect(s.etcd.members.map((m) => m.name).sort()).toEqual(['h1', 'h2']);
  });

  it("remove revokes the host's certificate: the cluster API and etcd refuse it afterwards, other hosts' still work", async () => {
    const tlsOf = (x: SimHost) => join(x.home, 'cluster', 'tls');
    /** A request with `x`'s certificate, from `from`'s namespace (h4's and h3's daemons are stopped). */
    const api = (from: SimHost, x: SimHost, to: SimHost) => {
      try {
        const out = execFileSync('ip', ['netns', 'exec', from.netns, 'curl', '-sS', '--max-time', '5', '--cacert', join(tlsOf(x), 'ca.crt'), '--cert', join(tlsOf(x), 'host.crt'), '--key', join(tlsOf(x), 'host.key'),
          '-X', 'POST', '-H', 'content-type: application/json', '--data', '{}', `https://${to.address}:7443/v1/ping`], { encoding: 'utf8' });
        return JSON.parse(out) as { host?: string; caller?: string; code?: string; message?: string };
      } catch (e) {
        return { code: 'CURL', message: String((e as { stderr?: string }).stderr) };
      }
    };
    const etcd = (from: SimHost, x: SimHost, to: SimHost) => {
      try {
        execFileSync('ip', ['netns', 'exec', from.netns, 'etcdctl', `--endpoints=https://${to.address}:2379`, '--dial-timeout=3s', '--command-timeout=5s', '--cacert', join(tlsOf(x), 'ca.crt'), '--cert', join(tlsOf(x), 'host.crt'), '--key', join(tlsOf(x), 'host.key'), 'get', '/virtnode/meta', '--print-value-only'], { stdio: ['ignore', 'pipe', 'pipe'] });
        return 'answered';
      } catch (e) {
        return `refused: ${String((e as { stderr?: Buffer }).stderr)}`;
      }
    };
    const [h1, h2, h3, h4] = h as [SimHost, SimHost, SimHost, SimHost];
    // The revocations are in etcd, by serial, for both removed hosts.
    for (const x of [h3, h4]) {
      const serial = certSerial(readFileSync(join(tlsOf(x), 'host.crt'), 'utf8'));
      await h1.logged(`"revokedSerial":"${serial}"`);
    }
    // A kept host's certificate works; a removed host's is refused by the cluster API of both hosts...
    expect(api(h2, h2, h1)).toEqual({ host: 'h1', caller: 'h2' });
    for (const x of [h3, h4]) {
      for (const to of [h1, h2]) {
        const r = api(x, x, to);
        expect(r.code).toBe('UNAUTHORIZED');
        expect(r.message).toMatch(new RegExp(`the client certificate \\(serial [0-9A-F]+\\) is refused: it was revoked at .*, when host ${x.name} was removed from the cluster`));
      }
    }
    // ...and by both etcd members (their CRL files follow the list in etcd).
    expect(etcd(h2, h2, h1)).toBe('answered');
    for (const x of [h3, h4]) {
      for (const to of [h1, h2]) await eventually(() => (etcd(x, x, to).startsWith('refused') ? true : undefined), 15_000, `etcd on ${to.name} refuses ${x.name}'s certificate`);
    }
    expect(etcd(h1, h1, h2)).toBe('answered');
  });
});
