/**
 * A NIC attached to a running container gets an address by DHCP (ifupdown's hotplug rule in the guest, from the
 * stanza virtnode writes before the NIC appears), keeps getting one after a restart, and its stanza goes with it
 * on detach. Delete then leaves no link, mount or cgroup of this state directory.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { type ContainerFootprint, containerFootprint } from '../helpers/container-footprint.ts';
import { debianImage } from '../helpers/debian-image.ts';

const NAME = 'ct-hot';

describe('a NIC attached to a running container', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxc-hotplug-');
  let before: ContainerFootprint;

  const run = async (args: string[], timeoutMs = 120_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };
  const inside = async (script: string) => (await virtnode(home, ['exec', NAME, '--', 'sh', '-c', script], { timeoutMs: 120_000 })).stdout;
  /** eth1's IPv4 address in the container, waited for (DHCP takes a few seconds on a loaded machine). */
  const eth1Address = async () => (await inside('for i in $(seq 90); do a=$(ip -4 -o addr show dev eth1 | awk \'{print $4}\'); [ -n "$a" ] && break; sleep 1; done; echo "$a"')).trim();

  beforeAll(async () => {
    before = containerFootprint(home, [NAME]);
    await run(['image', 'import', debianImage(), '--name', 'debian-12'], 300_000);
    await run(['network', 'create', 'default', '--subnet', '10.94.0.0/24']);
    await run(['network', 'create', 'second', '--subnet', '10.95.0.0/24']);
    await run(['launch', 'debian-12', '--container', '--name', NAME, '--memory', '256M', '--timeout', '500'], 600_000);
  }, 900_000);

  afterAll(async () => {
    await virtnode(home, ['delete', '--force', NAME]).catch(() => {});
    for (const n of ['second', 'default']) await virtnode(home, ['network', 'rm', n]).catch(() => {});
    cleanup();
  });

  it('comes up with an address from its network, by DHCP, also after a restart', async () => {
    const attached = await run(['nic', 'attach', NAME, 'second']);
    expect(attached.stdout).toMatch(/^Attached NIC 1 /);
    expect(await eth1Address()).toMatch(/^10\.95\.0\.\d+\/24$/);
    expect(await inside('cat /etc/network/interfaces.d/60-virtnode-eth1')).toContain('iface eth1 inet dhcp');
    await run(['restart', NAME, '--timeout', '60'], 180_000);
    expect(await eth1Address()).toMatch(/^10\.95\.0\.\d+\/24$/);
  });

  it('takes its stanza away on detach, and delete leaves nothing', async () => {
    await run(['nic', 'detach', NAME, '1']);
    expect(await inside('test -e /etc/network/interfaces.d/60-virtnode-eth1 && echo there || echo gone; test -e /sys/class/net/eth1 && echo there || echo gone')).toBe('gone\ngone\n');
    await run(['delete', '--force', NAME]);
    for (const n of ['second', 'default']) await run(['network', 'rm', n]);
    expect(existsSync(join(home, 'instances', NAME))).toBe(false);
    expect(containerFootprint(home, [NAME])).toEqual(before);
  });
});
