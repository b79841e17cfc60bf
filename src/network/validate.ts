import { invalid, VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { validateInterfaceName } from './interface-name.ts';
import { type Cidr, formatCidr, formatIpv4, isHostAddress, overlaps, parseCidr, parseIpv4 } from './ipv4.ts';
import type { Network, NetworkMode } from './model.ts';
import type { HostRoute } from './routes.ts';

/** What a user asks for, as typed. */
export interface NetworkCreateRequest {
  name: string;
  mode?: string;
  subnet?: string;
  dhcpRange?: string;
  domain?: string;
  /** bridge mode: the existing bridge. */
  bridge?: string;
  /** In a cluster, nat/isolated: the VXLAN network identifier. */
  vni?: number;
}

export interface NetworkCreateContext {
  existing: Network[];
  routes: HostRoute[];
  /** Whether a Linux bridge of that name exists on the host. */
  bridgeExists: (name: string) => boolean;
  /** The host is in a cluster: the network is defined cluster-wide. */
  clustered?: boolean;
}

export type ValidNetwork = Omit<Network, 'id' | 'bridge' | 'createdAt' | 'cluster'> & { bridge?: string; vni?: number };

/** VXLAN network identifiers are 24 bits; 0 is not used. */
export const MAX_VNI = 16_777_215;

function validateVni(request: NetworkCreateRequest, mode: NetworkMode, context: NetworkCreateContext): number | undefined {
  const vni = request.vni;
  if (vni === undefined) return undefined;
  if (context.clustered !== true) throw invalid('vni', 'applies only in a cluster (a VXLAN joins the hosts\' bridges); this host is standalone', 'leave --vni out');
  if (mode === 'bridge') throw invalid('vni', 'does not apply to --bridge (the existing bridge is the shared L2)');
  if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) throw invalid('vni', `${vni} is out of range`, `use 1-${MAX_VNI}`);
  const holder = context.existing.find((n) => n.cluster?.vni === vni);
  if (holder !== undefined) throw new VirtnodeError('CONFLICT', `vni: VXLAN ${vni} is network ${holder.name}'s already`, { field: 'vni', hint: 'choose another, or leave --vni out to get a free one' });
  return vni;
}

/** Where a network without --subnet goes: the first /24 of these that no network or host route uses. */
const AUTO_SUBNET_RANGES = ['10.77.0.0/16', '172.31.0.0/16'];
const AUTO_PREFIX = 24;
/** The smallest subnet that still holds a gateway and two guests. */
const MAX_PREFIX = 29;
/** Larger subnets mean huge DHCP ranges; nobody needs more than a /16 per virtual network. */
const MIN_PREFIX = 16;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const RESERVED_NAMES = new Set(['user', 'none']);

/** Why `subnet` cannot be used here (another network or a host route has it), or undefined when it is free. */
function subnetTaken(subnet: Cidr, context: NetworkCreateContext): VirtnodeError | undefined {
  for (const other of context.existing) {
    if (other.ipv4 === undefined) continue;
    if (overlaps(subnet, parseCidr('subnet', other.ipv4.subnet))) {
      return new VirtnodeError('CONFLICT', `--subnet: ${formatCidr(subnet)} overlaps network ${other.name} (${other.ipv4.subnet})`, {
        field: '--subnet',
        hint: 'choose a subnet no other network uses (see `virtnode network ls`), or leave --subnet out to get a free one',
      });
    }
  }
  for (const route of context.routes) {
    if (overlaps(subnet, route.dst)) {
      return new VirtnodeError('CONFLICT', `--subnet: ${formatCidr(subnet)} collides with the host route to ${route.text}${route.dev ? ` (dev ${route.dev})` : ''}`, {
        field: '--subnet',
        hint: 'guests on it could not reach those hosts; choose a free range (see `ip route`), or leave --subnet out to get a free one',
      });
    }
  }
  return undefined;
}

function firstFreeSubnet(context: NetworkCreateContext): Cidr {
  for (const text of AUTO_SUBNET_RANGES) {
    const range = parseCidr('subnet', text);
    for (let network = range.network; network < range.network + 2 ** (32 - range.prefix); network += 2 ** (32 - AUTO_PREFIX)) {
      const candidate = { network, prefix: AUTO_PREFIX };
      if (subnetTaken(candidate, context) === undefined) return candidate;
    }
  }
  throw new VirtnodeError('CONFLICT', `--subnet: every /${AUTO_PREFIX} of ${AUTO_SUBNET_RANGES.join(' and ')} is used by a network or a host route`, {
    field: '--subnet',
    hint: 'choose one with --subnet CIDR (see `virtnode network ls` and `ip route`)',
  });
}

/** Validates `network create` completely, before anything is made. */
export function validateNetworkCreate(request: NetworkCreateRequest, context: NetworkCreateContext): ValidNetwork {
  const name = validateName('name', request.name);
  if (RESERVED_NAMES.has(name)) throw invalid('name', `"${name}" is reserved (--network ${name} means something else)`, 'choose another name');
  if (context.existing.some((n) => n.name === name)) {
    throw new VirtnodeError('CONFLICT', `network ${name} already exists`, { field: 'name', hint: 'choose another name, or remove it first' });
  }
  const mode = (request.mode ?? 'nat') as NetworkMode;
  if (!['nat', 'isolated', 'bridge'].includes(mode)) throw invalid('mode', `"${request.mode}" is not valid`, 'use --nat, --isolated or --bridge BRIDGE');

  if (mode === 'bridge') {
    for (const [field, value] of [['--subnet', request.subnet], ['--dhcp-range', request.dhcpRange], ['--domain', request.domain]] as const) {
      if (value !== undefined) throw invalid(field, 'does not apply to --bridge (the existing bridge\'s own network assigns addresses)');
    }
    const bridge = validateInterfaceName('--bridge', request.bridge ?? '');
    if (!context.bridgeExists(bridge)) {
      throw new VirtnodeError('NOT_FOUND', `--bridge: there is no bridge ${bridge} on this host`, {
        field: '--bridge',
        hint: `create it first (ip link add ${bridge} type bridge), or see \`ip -br link show type bridge\``,
      });
    }
    validateVni(request, mode, context);
    return { name, mode, bridge };
  }
  if (request.bridge !== undefined) throw invalid('--bridge', 'cannot be combined with --nat or --isolated');

  const subnet = request.subnet === undefined ? firstFreeSubnet(context) : parseCidr('--subnet', request.subnet, { strict: true });
  if (subnet.prefix < MIN_PREFIX || subnet.prefix > MAX_PREFIX) {
    throw invalid('--subnet', `/${subnet.prefix} is out of range`, `use a prefix from /${MIN_PREFIX} to /${MAX_PREFIX}, e.g. 10.77.0.0/24`);
  }
  const taken = subnetTaken(subnet, context);
  if (taken !== undefined) throw taken;
  const vni = validateVni(request, mode, context);
  const gateway = subnet.network + 1;
  let start = subnet.network + 2;
  let end = subnet.network + 2 ** (32 - subnet.prefix) - 2;
  if (request.dhcpRange !== undefined) {
    const match = /^([^-\s]+)-([^-\s]+)$/.exec(request.dhcpRange.trim());
    const a = match === null ? undefined : parseIpv4(match[1]!);
    const b = match === null ? undefined : parseIpv4(match[2]!);
    if (a === undefined || b === undefined) throw invalid('--dhcp-range', `"${request.dhcpRange}" is not a range`, 'write it as FIRST-LAST, e.g. 10.77.0.100-10.77.0.199');
    if (a > b) throw invalid('--dhcp-range', `${formatIpv4(a)} comes after ${formatIpv4(b)}`, 'write the lower address first');
    for (const x of [a, b]) {
      if (!isHostAddress(subnet, x)) throw invalid('--dhcp-range', `${formatIpv4(x)} is not a host address of ${formatCidr(subnet)}`, `use addresses from ${formatIpv4(subnet.network + 2)} to ${formatIpv4(end)}`);
      if (x === gateway) throw invalid('--dhcp-range', `${formatIpv4(x)} is the gateway (the host's address on the network)`, `start at ${formatIpv4(gateway + 1)} or later`);
    }
    if (a < gateway && b > gateway) throw invalid('--dhcp-range', `contains the gateway ${formatIpv4(gateway)}`);
    start = a;
    end = b;
  }
  const domain = (request.domain ?? `${name}.internal`).toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(domain)) throw invalid('--domain', `"${request.domain}" is not a domain name`, 'use DNS labels separated by dots, e.g. lab.internal');
  return {
    name,
    mode,
    ipv4: { subnet: formatCidr(subnet), gateway: formatIpv4(gateway), dhcpStart: formatIpv4(start), dhcpEnd: formatIpv4(end) },
    domain,
    ...(vni === undefined ? {} : { vni }),
  };
}

/** A static address for a NIC: a host address of the subnet, not the gateway, not taken. */
export function validateStaticAddress(field: string, network: Network, text: string, taken: Map<string, string>): string {
  if (network.ipv4 === undefined) throw invalid(field, `network ${network.name} is bridged to ${network.bridge}; its addresses are not virtnode's to assign`, 'configure the address inside the guest');
  const subnet = parseCidr('subnet', network.ipv4.subnet);
  const address = parseIpv4(text);
  if (address === undefined) throw invalid(field, `"${text}" is not an IPv4 address`, 'e.g. 10.77.0.10');
  if (!isHostAddress(subnet, address)) throw invalid(field, `${text} is outside network ${network.name} (${network.ipv4.subnet})`, `use a host address of ${network.ipv4.subnet}`);
  if (text === network.ipv4.gateway) throw invalid(field, `${text} is the gateway of network ${network.name} (the host's own address)`);
  const owner = taken.get(text);
  if (owner !== undefined) throw new VirtnodeError('CONFLICT', `${field}: ${text} is already taken on network ${network.name} by ${owner}`, { field, hint: 'choose another address, or leave --ip out to get a free one' });
  return text;
}
