import { run } from '../../../exec/run.ts';
import { type LxcTarget, lxcAttachArgv } from './tools.ts';

/**
 * A NIC added to a running container gets no address from cloud-init (its network config, written at first boot,
 * names the NICs of that time). Guests that use ifupdown (Debian's images) get a stanza for it: DHCP, brought up
 * now (as ifupdown's udev hotplug rule would: the container's udevd does not act on a link moved in) and by
 * networking.service at later boots.
 */
const INTERFACES_DIR = '/etc/network/interfaces.d';
const QUICK_MS = 30_000;

export function hotplugStanzaPath(ifname: string): string {
  return `${INTERFACES_DIR}/60-virtnode-${ifname}`;
}

export function hotplugStanza(ifname: string): string {
  return [`# Written by virtnode when ${ifname} was attached to the running container; removed when it is detached.`, `auto ${ifname}`, `allow-hotplug ${ifname}`, `iface ${ifname} inet dhcp`, ''].join('\n');
}

/** Writes the stanza inside the container (as its root, never through the host's view of its files); false when the guest has no ifupdown. */
export async function writeHotplugStanza(t: LxcTarget, ifname: string): Promise<boolean> {
  const ifupdown = await run(lxcAttachArgv(t, ['test', '-d', INTERFACES_DIR]), { timeoutMs: QUICK_MS, okCodes: [0, 1] });
  if (ifupdown.code !== 0) return false;
  await run(lxcAttachArgv(t, ['tee', hotplugStanzaPath(ifname)]), { timeoutMs: QUICK_MS, input: hotplugStanza(ifname) });
  return true;
}

export async function removeHotplugStanza(t: LxcTarget, ifname: string): Promise<void> {
  await run(lxcAttachArgv(t, ['rm', '-f', hotplugStanzaPath(ifname)]), { timeoutMs: QUICK_MS });
}

/**
 * Starts DHCP on it without waiting for the lease: `ifup` in a transient unit of the guest's systemd (the guest's
 * own ifup@ unit cannot run: it binds to the udev device the container never gets), else `ifup` waited for.
 */
export async function bringUpHotplugNic(t: LxcTarget, ifname: string): Promise<void> {
  const unit = await run(lxcAttachArgv(t, ['systemd-run', '--no-block', '--collect', `--unit=virtnode-ifup-${ifname}`, 'ifup', '--allow=hotplug', ifname]), {
    timeoutMs: QUICK_MS,
    okCodes: [0, 1, 127],
  });
  if (unit.code !== 0) await run(lxcAttachArgv(t, ['ifup', '--allow=hotplug', ifname]), { timeoutMs: 120_000, okCodes: [0, 1] });
}
