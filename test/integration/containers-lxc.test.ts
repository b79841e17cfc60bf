/**
 * System containers through LXC, from the real Debian image: two containers launched at once (one with
 * user-data and a 256 MiB limit, both on the default NAT network made on first use), checked for their
 * cloud-init identity, their unprivileged uid range, the OOM killer, the freezer, exec's exit code, SSH with
 * strict host key checking, the stop/start cycle, and that delete leaves nothing (links, mounts, cgroups, files).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { requestsTo } from '../helpers/cli-modes.ts';
import { type ContainerFootprint, containerFootprint } from '../helpers/container-footprint.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 600_000;
const NAMES = ['ct-a', 'ct-b', 'ct-p'];

interface InfoJson {
  name: string;
  type: string;
  state: string;
  pid?: number;
  nics: Array<{ mac: string; network: string; address?: string }>;
  ssh: { user: string; address: string; hostKeyFingerprints: string[] };
  instanceId: string;
}

const USER_DATA = `#cloud-config
users:
  - default
  - name: ops
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
write_files:
  - path: /etc/virtnode-test/secret.conf
    content: aGVsbG8gY29udGFpbmVy
    encoding: b64
    permissions: '0640'
runcmd:
  - [sh, -c, 'echo runcmd-ran > /var/tmp/runcmd-marker']
`;

describe('system containers (LXC) from the Debian image', { timeout: 600_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxc-');
  let before: ContainerFootprint;
  const info: Record<string, InfoJson> = {};

  const run = async (args: string[], code = 0, timeoutMs?: number) => {
    const r = await virtnode(home, args, timeoutMs === undefined ? {} : { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(code);
    return r;
  };
  const inside = async (name: string, script: string) => {
    const r = await virtnode(home, ['exec', name, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  };
  const getInfo = async (name: string) => JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as InfoJson;

  beforeAll(async () => {
    before = containerFootprint(home, NAMES);
    const image = debianImage();
    await run(['image', 'import', image, '--name', 'debian-12'], 0, 300_000);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(home, 'user-data.yaml'), USER_DATA);
    const launched = await Promise.all([
      virtnode(home, ['launch', 'debian-12', '--container', '--name', 'ct-a', '--memory', '256M', '--user-data', join(home, 'user-data.yaml'), '--timeout', '500'], {
        timeoutMs: LAUNCH_TIMEOUT_MS,
      }),
      virtnode(home, ['launch', 'debian-12', '--type', 'container', '--name', 'ct-b', '--memory', '512M', '--timeout', '500'], { timeoutMs: LAUNCH_TIMEOUT_MS }),
      virtnode(home, ['launch', 'debian-12', '--container', '--privileged', '--name', 'ct-p', '--memory', '256M', '--no-wait'], { timeoutMs: LAUNCH_TIMEOUT_MS }),
    ]);
    for (const r of launched) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(launched[2]!.stderr).toContain('warning: --privileged: root in this container is root on the host');
    expect(launched[0]!.stderr).not.toContain('--privileged');
    for (const name of NAMES) info[name] = await getInfo(name);
    // What the end of this file checks is gone is there now: the default network's bridge and a veth per container.
    expect(containerFootprint(home, NAMES).links.length).toBeGreaterThanOrEqual(1 + NAMES.length);
  }, LAUNCH_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    for (const name of NAMES) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    for (const name of NAMES) {
      try {
        execFileSync('lxc-stop', ['-P', join(home, 'instances'), '-n', name, '-k'], { stdio: 'ignore' });
      } catch {
        // not running: nothing to end
      }
    }
    cleanup();
  });

  it('lists both as containers, on the default NAT network made on first use', async () => {
    const list = (await run(['list'])).stdout;
    expect(list).toMatch(/ct-a\s+container\s+running/);
    expect(list).toMatch(/ct-b\s+container\s+running/);
    for (const name of NAMES) {
      expect(info[name]!.type).toBe('container');
      expect(list).toMatch(new RegExp(`${name}\\s+container\\s+running`));
      expect(info[name]!.nics.map((n) => n.network)).toEqual(['default']);
    }
    const network = JSON.parse((await run(['network', 'info', 'default', '--format', 'json'])).stdout) as { mode: string };
    expect(network.mode).toBe('nat');
  });

  it('gives each container its cloud-init identity: hostname, users, files, runcmd, fresh machine-id', async () => {
    const a = await inside('ct-a', 'hostname; stat -c "%a %U" /etc/virtnode-test/secret.conf; cat /etc/virtnode-test/secret.conf; echo; cat /var/tmp/runcmd-marker; sudo -l -U ops | grep -c NOPASSWD; cloud-init status');
    expect(a.code, a.out).toBe(0);
    expect(a.out).toContain('ct-a\n640 root\nhello container\nruncmd-ran\n1\nstatus: done');
    const ids = await Promise.all(NAMES.map((n) => inside(n, 'cat /etc/machine-id; hostname; cat /var/lib/cloud/data/instance-id; ip -o -4 addr show dev eth0')));
    const [ida, idb] = ids.map((r) => r.out.split('\n'));
    expect(ida![0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ida![0]).not.toBe(idb![0]);
    expect(ida![1]).toBe('ct-a');
    expect(idb![1]).toBe('ct-b');
    expect(ida![2]).toBe(info['ct-a']!.instanceId);
    expect(ida![3]).toContain(`${info['ct-a']!.nics[0]!.address}/`);
    expect(idb![3]).toContain(`${info['ct-b']!.nics[0]!.address}/`);
    // Distinct MACs, addresses and injected host keys.
    expect(info['ct-a']!.nics[0]!.mac).not.toBe(info['ct-b']!.nics[0]!.mac);
    expect(info['ct-a']!.nics[0]!.address).not.toBe(info['ct-b']!.nics[0]!.address);
    expect(info['ct-a']!.ssh.hostKeyFingerprints.some((f) => info['ct-b']!.ssh.hostKeyFingerprints.includes(f))).toBe(false);
  });

  it('answers SSH with the injected host key, checked strictly', async () => {
    const r = await run(['exec', 'ct-b', '--', 'true']);
    expect(r.code).toBe(0);
    const i = info['ct-b']!;
    const out = execFileSync(
      'ssh',
      [
        '-i', join(home, 'ssh', 'id_ed25519'),
        '-o', 'IdentitiesOnly=yes',
        '-o', `UserKnownHostsFile=${join(home, 'ssh', 'known_hosts')}`,
        '-o', 'StrictHostKeyChecking=yes',
        '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'ConnectTimeout=20',
        '-o', 'BatchMode=yes',
        `${i.ssh.user}@${i.nics[0]!.address}`,
        'hostname',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    // known_hosts holds only the keys virtnode generated and injected: strict checking passing proves it is one.
    expect(out).toBe('ct-b\n');
    const served = await inside('ct-b', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub');
    expect(i.ssh.hostKeyFingerprints.some((f) => served.out.includes(f))).toBe(true);
  });

  it('runs root in the container as host uid 100000 and up, or as host root when privileged', async () => {
    const uidOf = (name: string) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${info[name]!.pid!}/status`, 'utf8'))![1]);
    expect(uidOf('ct-p')).toBe(0);
    expect((await getInfo('ct-p')).state).toBe('running');
    for (const name of ['ct-a', 'ct-b']) {
      const pid = info[name]!.pid!;
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
      expect(uid).toBe(100000);
    }
    // Files it writes are owned by that range on the host too (in its overlay's upper directory).
    await inside('ct-b', 'echo x > /root/owned');
    expect(statSync(join(home, 'instances', 'ct-b', 'upper', 'root', 'owned')).uid).toBe(100000);
  });

  it('reaches another container by its DNS name on the network', async () => {
    const r = await inside('ct-a', "timeout 20 bash -c 'exec 3<>/dev/tcp/ct-b/22; head -c 7 <&3'");
    expect(r.out).toBe('SSH-2.0');
  });

  it('returns the exit code of exec', async () => {
    const r = await virtnode(home, ['exec', 'ct-b', '--', 'sh', '-c', 'echo out; exit 7']);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('out\n');
  });

  it('OOM-kills a memory hog in a 256 MiB container, which stays up', async () => {
    const hog = await inside('ct-a', 'python3 -c "b=[]\nfor _ in range(64): b.append(bytearray(16 << 20))"; echo "exit=$?"');
    expect(hog.out).toMatch(/exit=137/);
    const after = await inside('ct-a', 'systemctl is-system-running; echo alive');
    expect(after.out).toContain('alive');
    expect((await getInfo('ct-a')).state).toBe('running');
  });

  it('freezes a paused container and thaws it on resume', async () => {
    await inside('ct-b', 'nohup sh -c "while :; do echo t >> /var/tmp/ticks; sleep 0.1; done" >/dev/null 2>&1 &');
    const ticks = join(home, 'instances', 'ct-b', 'upper', 'var', 'tmp', 'ticks');
    await new Promise((r) => setTimeout(r, 1_000));
    const paused = await virtnode(home, ['pause', 'ct-b'], { timeoutMs: 120_000 });
    if (paused.code !== 0) {
      const cg = '/sys/fs/cgroup/freezer/lxc.payload.ct-b';
      const tasks = existsSync(cg) ? execFileSync('sh', ['-c', `for t in $(find ${cg} -name tasks | xargs cat); do echo "$t $(cat /proc/$t/comm) $(cat /proc/$t/wchan)"; done`], { encoding: 'utf8' }) : '';
      expect.fail(`pause failed: ${paused.stderr}\n${tasks}`);
    }
    expect((await getInfo('ct-b')).state).toBe('paused');
    const frozen = statSync(ticks).size;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(statSync(ticks).size).toBe(frozen);
    const refused = await virtnode(home, ['exec', 'ct-b', '--', 'true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('paused');
    await run(['resume', 'ct-b']);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(statSync(ticks).size).toBeGreaterThan(frozen);
  });

  it('refuses a clone of a running container, naming why', async () => {
    const clone = await virtnode(home, ['clone', 'ct-b', 'ct-c']);
    expect(clone.code).not.toBe(0);
    expect(clone.stderr).toContain('cannot clone instance ct-b: it is running');
  });

  it('stops cleanly, starts again with the same identity, and restarts', async () => {
    const stopped = await run(['stop', 'ct-b', '--timeout', '60'], 0, 120_000);
    expect(stopped.stdout).toContain('powered off');
    expect((await getInfo('ct-b')).state).toBe('stopped');
    await run(['start', 'ct-b'], 0, 120_000);
    await run(['restart', 'ct-b', '--timeout', '60'], 0, 180_000);
    const again = await inside('ct-b', 'hostname; cat /var/lib/cloud/data/instance-id; cat /root/owned');
    expect(again.out).toBe(`ct-b\n${info['ct-b']!.instanceId}\nx\n`);
    // The console is recorded across starts: the first boot's cloud-init lines and the shutdown of the stop.
    const logs = await run(['logs', 'ct-b', '--lines', '100000']);
    expect(logs.stdout).toContain('Cloud-init target');
    expect(logs.stdout).toMatch(/Stopped|Reached target.*(Power-Off|Halt|Shutdown)/);
  });

  it('deletes without a trace: links, mounts, cgroups, LXC config, overlay', async () => {
    await run(['delete', '--force', 'ct-a'], 0, 120_000);
    await run(['delete', '--force', 'ct-p'], 0, 120_000);
    await run(['stop', 'ct-b', '--force']);
    expect((await getInfo('ct-b')).state).toBe('stopped');
    await run(['delete', 'ct-b']);
    await run(['network', 'rm', 'default']);
    for (const name of NAMES) expect(existsSync(join(home, 'instances', name))).toBe(false);
    expect((await run(['list'])).stdout).not.toContain('ct-');
    expect(containerFootprint(home, NAMES)).toEqual(before);
    // The image's unpacked root filesystem goes with the image.
    const rootfs = join(home, 'images', 'rootfs');
    expect(readdirSync(rootfs).filter((e) => !e.endsWith('.lock'))).toHaveLength(2); // shifted and privileged
    // Removed through the daemon, which keeps answering meanwhile (two trees of tens of thousands of files each).
    const daemon = await startDaemon(home);
    try {
      const answerMs: number[] = [];
      let removing = true;
      const removal = run(['image', 'rm', 'debian-12']).finally(() => (removing = false));
      while (removing) {
        const t0 = performance.now();
        expect((await daemon.api.request('GET', '/instances')).status).toBe(200);
        answerMs.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 50));
      }
      await removal;
      await daemon.logCaughtUp();
      expect(requestsTo(daemon, 'DELETE', /^\/images\/debian-12/)).toBe(1);
      expect(readdirSync(rootfs).filter((e) => !e.endsWith('.lock'))).toEqual([]);
      console.log(`GET /instances during image rm: ${answerMs.length} answers, slowest ${Math.round(Math.max(...answerMs))} ms`);
      expect(Math.max(...answerMs)).toBeLessThan(2000);
    } finally {
      await daemon.stop();
    }
  });
});
