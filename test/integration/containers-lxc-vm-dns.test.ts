/**
 * A system container (the Debian image) and a VM (the tiny guest) on one NAT network reach each other by name:
 * the network's dnsmasq answers both names, the VM reaches the container's SSH server, the container the VM's
 * listener.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';
import { SerialShell, UDHCPC_SCRIPT_SETUP } from '../helpers/serial-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
// This file's own subnet (test files share one network namespace).
const SUBNET = '10.166.0.0/24';

describe('a container and a VM on one NAT network', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-ctvm-');
  let shell: SerialShell | undefined;

  const run = async (args: string[], timeoutMs = 600_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };

  afterAll(async () => {
    shell?.close();
    for (const name of ['mix-vm', 'mix-ct']) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    await virtnode(home, ['network', 'rm', 'mix']).catch(() => {});
    cleanup();
  });

  it('reach each other by name', async () => {
    await run(['network', 'create', 'mix', '--subnet', SUBNET, '--domain', 'mix.test']);
    await run(['image', 'import', debianImage(), '--name', 'debian-12']);
    await run(['create', 'mix-vm', ...bootArgs, '--network', 'mix', '--start']);
    await run(['launch', 'debian-12', '--container', '--name', 'mix-ct', '--network', 'mix', '--memory', '256M', '--timeout', '500']);
    const info = async (name: string) => JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as { nics: Array<{ address?: string }> };
    const [vmAddress, ctAddress] = [(await info('mix-vm')).nics[0]!.address!, (await info('mix-ct')).nics[0]!.address!];

    shell = await SerialShell.whenReady(join(home, 'instances', 'mix-vm'), 120_000);
    await shell.run(UDHCPC_SCRIPT_SETUP);
    const dhcp = await shell.run('ip link set eth0 up && udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
    expect(dhcp.status, dhcp.output).toBe(0);
    expect((await shell.run('ip -4 addr show eth0')).output).toContain(`inet ${vmAddress}/24`);

    // VM → container: its name resolves to its address, and its SSH server answers there.
    const lookup = await shell.run('nslookup mix-ct.mix.test 10.166.0.1');
    expect(lookup.output).toContain(ctAddress);
    const ping = await shell.run('ping -c 1 -W 5 mix-ct.mix.test', 30_000);
    expect(ping.status, ping.output).toBe(0);
    const banner = await shell.run(`echo | nc -w 5 ${ctAddress} 22`, 30_000);
    expect(banner.output).toContain('SSH-2.0');

    // Container → VM, by its short name (the network's search domain) and its full one.
    await shell.run('(while true; do echo from-vm | nc -l -p 7777; done) >/dev/null 2>&1 &');
    const resolved = await virtnode(home, ['exec', 'mix-ct', '--', 'getent', 'hosts', 'mix-vm.mix.test'], { timeoutMs: 60_000 });
    expect(resolved.stdout).toContain(vmAddress);
    const reached = await virtnode(home, ['exec', 'mix-ct', '--', 'timeout', '20', 'bash', '-c', 'exec 3<>/dev/tcp/mix-vm/7777; head -c 7 <&3'], { timeoutMs: 60_000 });
    expect(reached.stdout, reached.stderr).toBe('from-vm');
  });
});
