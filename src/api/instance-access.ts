/** How to reach an instance, read from its view (the CLI and the web UI show these). */
import type { InstanceView } from './schemas.ts';

/** The best-known address of a NIC for a one-line display (as src/instances/addresses.ts shownAddress). */
export function shownNicAddress(n: InstanceView['nics'][number]): string | undefined {
  return n.guestAddresses?.[0]?.split('/')[0] ?? n.lease ?? n.address;
}

/** The SSH port on loopback of a launched instance, from its view. */
export function sshPort(view: InstanceView): number | undefined {
  const port = view.ssh?.address?.split(':')[1];
  return port === undefined ? undefined : Number(port);
}
