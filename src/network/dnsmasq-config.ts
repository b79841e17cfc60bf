import { parseCidr, netmaskText } from './ipv4.ts';
import type { Network } from './model.ts';

/** Files of one network's dnsmasq, all in the network's directory. */
export interface DnsmasqFiles {
  config: string;
  pidfile: string;
  leases: string;
  /** dhcp-hostsfile: one reservation per MAC (re-read on SIGHUP). */
  dhcpHosts: string;
  /** addn-hosts: NAME.DOMAIN records (re-read on SIGHUP). */
  hosts: string;
  log: string;
  /** The unprivileged user dnsmasq runs as once it has opened its sockets, lease file and log. */
  user: string;
}

export interface Reservation {
  mac: string;
  address: string;
  /** The instance name; the DNS name is NAME.DOMAIN. */
  hostname: string;
}

const LEASE_TIME = '1h';

/**
 * dnsmasq's configuration for a nat or isolated network: DHCP and DNS on the network's bridge only, nothing read
 * from the host's /etc/hosts or resolv.conf-derived state it does not need. Pure (golden-tested).
 * dnsmasq drops root for `files.user` after start-up; the two files it re-reads on SIGHUP (reservations and host
 * records) are in a directory only that user (and root) can read, outside virtnode's 0700 state directory.
 */
export function renderDnsmasqConfig(network: Network, files: DnsmasqFiles): string {
  const ipv4 = network.ipv4!;
  const subnet = parseCidr('subnet', ipv4.subnet);
  const domain = network.domain!;
  const lines = [
    `# virtnode network ${network.name} (${network.mode}); written by virtnode, do not edit`,
    `pid-file=${files.pidfile}`,
    `log-facility=${files.log}`,
    `user=${files.user}`,
    'strict-order',
    'bind-interfaces',
    'except-interface=lo',
    `interface=${network.bridge}`,
    `listen-address=${ipv4.gateway}`,
    'no-hosts',
    `addn-hosts=${files.hosts}`,
    `domain=${domain}`,
    `local=/${domain}/`,
    'domain-needed',
    'bogus-priv',
    // Names of guests whose DHCP client sends a hostname are also published, qualified with the domain.
    'expand-hosts',
    `dhcp-range=${ipv4.dhcpStart},${ipv4.dhcpEnd},${netmaskText(subnet.prefix)},${LEASE_TIME}`,
    'dhcp-no-override',
    'dhcp-authoritative',
    `dhcp-leasefile=${files.leases}`,
    `dhcp-hostsfile=${files.dhcpHosts}`,
  ];
  if (network.mode === 'isolated') {
    // No route out: hand out no router; guests still reach each other and the DNS on the bridge.
    lines.push('dhcp-option=option:router');
  } else {
    lines.push(`dhcp-option=option:router,${ipv4.gateway}`);
  }
  lines.push(`dhcp-option=option:dns-server,${ipv4.gateway}`, `dhcp-option=option:domain-search,${domain}`);
  return `${lines.join('\n')}\n`;
}

export function renderDhcpHosts(reservations: Reservation[]): string {
  return reservations.map((r) => `${r.mac},${r.address},${r.hostname}\n`).join('');
}

export function renderHostsFile(reservations: Reservation[], domain: string): string {
  return reservations.map((r) => `${r.address} ${r.hostname}.${domain} ${r.hostname}\n`).join('');
}

export interface Lease {
  expires: Date | undefined;
  mac: string;
  address: string;
  hostname: string | undefined;
  clientId: string | undefined;
}

/** dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT-ID` per line, `*` for unknown; IPv6 `duid` lines skipped. */
export function parseLeases(text: string): Lease[] {
  const leases: Lease[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[0] === 'duid') continue;
    const [expiry, mac, address, hostname, clientId] = fields as [string, string, string, string, string | undefined];
    if (!/^\d+$/.test(expiry) || !address.includes('.')) continue;
    leases.push({
      expires: expiry === '0' ? undefined : new Date(Number(expiry) * 1000),
      mac: mac.toLowerCase(),
      address,
      hostname: hostname === '*' ? undefined : hostname,
      clientId: clientId === undefined || clientId === '*' ? undefined : clientId,
    });
  }
  return leases;
}
