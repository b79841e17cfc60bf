import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { EtcdMemberProcess, etcdHealthy } from '../../src/cluster/etcd-member.ts';
import { caKeyPath, createCa, fingerprint, issueHostCert, signHostCsr } from '../../src/cluster/pki.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { eventually } from '../helpers/daemon.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('cluster CA and a supervised etcd member with TLS', () => {
  let dir: string;
  let member: EtcdMemberProcess | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'virtnode-member-'));
  });
  afterAll(async () => {
    await member?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes a CA and a host certificate with 0600 keys; refuses a second CA and a forged CSR', async () => {
    const ca = await createCa(join(dir, 'ca'), 'c1');
    expect(ca.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(statSync(caKeyPath(join(dir, 'ca'))).mode & 0o777).toBe(0o600);
    await expect(createCa(join(dir, 'ca'), 'c1')).rejects.toThrow(/exists already/);
    const files = await issueHostCert(join(dir, 'ca'), join(dir, 'tls'), 'h1', '127.0.0.1');
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    const pem = readFileSync(files.cert, 'utf8');
    const { X509Certificate } = await import('node:crypto');
    const x = new X509Certificate(pem);
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x.checkIssued(new X509Certificate(readFileSync(files.ca, 'utf8')))).toBe(true);
    expect(fingerprint(readFileSync(files.ca, 'utf8'))).toBe(ca.fingerprint);
    const err = await signHostCsr(join(dir, 'ca'), 'not a csr', 'h2', '10.0.0.2').catch((e: unknown) => e);
    expect(isVirtnodeError(err, 'INVALID')).toBe(true);
  });

  it('runs etcd with client-cert TLS, restarts it after a crash, stops it cleanly', async () => {
    const tls = { ca: join(dir, 'tls', 'ca.crt'), cert: join(dir, 'tls', 'host.crt'), key: join(dir, 'tls', 'host.key') };
    const [cport, pport] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const clientUrl = `https://127.0.0.1:${cport}`;
    const peerUrl = `https://127.0.0.1:${pport}`;
    let restarts = 0;
    member = new EtcdMemberProcess(
      { name: 'h1', dir: join(dir, 'etcd'), clientUrl, peerUrl, initialCluster: `h1=${peerUrl}`, initialState: 'new', clusterToken: 'c1', tls, electionTimeoutMs: 500 },
      { onRestart: () => restarts++ },
    );
    await member.start();
    expect(statSync(join(dir, 'etcd')).mode & 0o777).toBe(0o700);
    const kv = new EtcdKv({ urls: [clientUrl], tls });
    await kv.txn([], [{ put: '/k', value: 'v' }]);
    // Without a client certificate the member refuses.
    const anonymous = await fetch(`${clientUrl}/health`).then(() => 'answered', () => 'refused');
    expect(anonymous).toBe('refused');

    const first = member.pid!;
    process.kill(first, 'SIGKILL');
    await eventually(async () => (member!.pid !== undefined && member!.pid !== first && (await etcdHealthy(clientUrl, tls)) ? true : undefined), 15_000, 'the member to be restarted');
    expect(restarts).toBe(1);
    // Its data survived the crash.
    expect((await kv.get('/k'))?.value).toBe('v');
    await kv.close();

    const second = member.pid!;
    await member.stop();
    expect(alive(second)).toBe(false);
    await new Promise((r) => setTimeout(r, 1200));
    expect(restarts).toBe(1);
  });

  it('stops a member a killed daemon left running before starting again on the same data', async () => {
    const { spawn } = await import('node:child_process');
    const orphan = spawn('/usr/bin/etcd', [...(await import('../../src/cluster/etcd-member.ts')).etcdArgv(member!.config)], { stdio: 'ignore' });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(member!.pidFile, `${orphan.pid}\n`);
    await eventually(async () => ((await etcdHealthy(member!.config.clientUrl, member!.config.tls)) ? true : undefined), 15_000, 'the orphan to run');
    await member!.start();
    expect(alive(orphan.pid!)).toBe(false);
    expect(member!.pid).not.toBe(orphan.pid);
    await member!.stop();
  });
});
