/** How to reach an instance, read from its view (the CLI and the web UI show these). */
import { USER_MODE_GUEST_ADDRESS, USER_NETWORK } from '../instances/model.ts';
import type { InstanceView } from './schemas.ts';

/**
 * The best-known address of a NIC for a one-line display: what the guest agent reports, else the DHCP lease or
 * reservation; a user-mode NIC's is always QEMU's (reached from the guest side only, or through port forwards).
 */
export function shownNicAddress(n: InstanceView['nics'][number]): string | undefined {
  return n.guestAddresses?.[0]?.split('/')[0] ?? n.lease ?? n.address ?? (n.network === USER_NETWORK ? USER_MODE_GUEST_ADDRESS : undefined);
}

/** The SSH port on loopback of a launched instance, from its view. */
export function sshPort(view: InstanceView): number | undefined {
  const port = view.ssh?.address?.split(':')[1];
  return port === undefined ? undefined : Number(port);
}
