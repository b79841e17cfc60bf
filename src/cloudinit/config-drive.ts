/**
 * An OpenStack config drive (`config-2`) with the same identity as virtnode's NoCloud seed: meta_data.json
 * (instance uuid, hostname, public keys), the same user_data (default user, SSH host keys, the user's own
 * user-data) and network_data.json (links matched by MAC, DHCP or static networks). cloud-init's ConfigDrive
 * datasource and cloudbase-init (Windows) read it from a volume labelled `config-2`.
 */
import { invalid } from '../lib/errors.ts';
import { renderUserData, type NicNetworkConfig, type SeedRequest } from './render.ts';

/** Paths inside the drive, relative to its root. */
export const CONFIG_DRIVE_DIR = 'openstack/latest';
export const CONFIG_DRIVE_LABEL = 'config-2';

export type ConfigDriveFiles = Record<string, string>;

interface Link {
  id: string;
  name: string;
  type: 'phy';
  ethernet_mac_address: string;
}

interface Network {
  id: string;
  link: string;
  type: 'ipv4_dhcp' | 'ipv4' | 'ipv6';
  network_id: string;
  ip_address?: string;
  netmask?: string;
  gateway?: string;
  routes?: Array<{ network: string; netmask: string; gateway: string }>;
  dns_nameservers?: string[];
  dns_search?: string[];
}

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

function checkMac(field: string, mac: string): string {
  if (!MAC.test(mac)) throw invalid(field, `"${mac}" is not a MAC address`, 'six hex pairs separated by colons');
  return mac.toLowerCase();
}

function ipv4Netmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 0xff).join('.');
}

/** A static NIC: IPv4 as address + netmask (OpenStack's shape); IPv6 keeps its prefix length. */
function staticNetwork(field: string, id: string, link: string, nic: Extract<NicNetworkConfig, { address: string }>): Network {
  const [address, prefixText] = nic.address.split('/');
  const prefix = Number(prefixText);
  const v6 = address!.includes(':');
  if (address === undefined || address === '' || !Number.isInteger(prefix) || prefix < 0 || prefix > (v6 ? 128 : 32)) {
    throw invalid(`${field}.address`, `"${nic.address}" is not an address with a prefix length`, 'e.g. 10.77.0.50/24');
  }
  const net: Network = { id, link, type: v6 ? 'ipv6' : 'ipv4', network_id: id, ip_address: address, netmask: v6 ? String(prefix) : ipv4Netmask(prefix) };
  if (nic.gateway !== undefined) {
    // `routes` is OpenStack's way; cloud-init renders it for ifupdown as `route add` (net-tools, absent from
    // minimal images), so `gateway` is given too, which its converter keeps and ifupdown applies itself.
    net.gateway = nic.gateway;
    net.routes = [{ network: v6 ? '::' : '0.0.0.0', netmask: v6 ? '::' : '0.0.0.0', gateway: nic.gateway }];
  }
  if (nic.dns !== undefined && nic.dns.length > 0) net.dns_nameservers = [...nic.dns];
  if (nic.search !== undefined && nic.search.length > 0) net.dns_search = [...nic.search];
  return net;
}

/** network_data.json: one `phy` link per NIC (named eth0, eth1, ... in NIC order), one network per link. */
export function renderNetworkData(req: SeedRequest): string {
  const net = req.network;
  if (net.kind === 'user-config') {
    throw invalid('--network-config', 'a config drive carries OpenStack network_data.json, not a cloud-init network-config', 'use --seed iso or vfat with --network-config, or --network/--ip with --seed configdrive');
  }
  const nics: NicNetworkConfig[] =
    net.kind === 'dhcp'
      ? net.macs.map((mac) => ({ mac, dhcp: true }))
      : net.kind === 'nics'
        ? net.nics
        : [{ mac: net.mac, address: net.address, ...(net.gateway === undefined ? {} : { gateway: net.gateway }), ...(net.dns === undefined ? {} : { dns: net.dns }) }];
  if (nics.length === 0) throw invalid('network', 'at least one NIC is needed');
  const links: Link[] = [];
  const networks: Network[] = [];
  const seen = new Set<string>();
  nics.forEach((nic, i) => {
    const mac = checkMac(`network.nics[${i}].mac`, nic.mac);
    if (seen.has(mac)) throw invalid('network', `the MAC address ${mac} appears twice`);
    seen.add(mac);
    const link = `tap${i}`;
    links.push({ id: link, name: `eth${i}`, type: 'phy', ethernet_mac_address: mac });
    networks.push(nic.dhcp === true ? { id: `network${i}`, link, type: 'ipv4_dhcp', network_id: `network${i}` } : staticNetwork(`network.nics[${i}]`, `network${i}`, link, nic));
  });
  const dns = [...new Set(nics.flatMap((n) => (n.dhcp === true ? [] : (n.dns ?? []))))];
  return `${JSON.stringify({ links, networks, services: dns.map((address) => ({ type: 'dns', address })) }, null, 2)}\n`;
}

/**
 * meta_data.json. `uuid` is virtnode's instance-id (`i-<uuid>`), which cloud-init takes as its instance-id, so a
 * config-drive instance has the same instance-id as a NoCloud one; `public_keys` lists the authorized keys for
 * readers that take keys from here (cloudbase-init); cloud-init gets them, and the host keys, from user_data.
 */
export function renderMetaDataJson(req: SeedRequest): string {
  const publicKeys: Record<string, string> = {};
  req.defaultUser.sshAuthorizedKeys.forEach((k, i) => (publicKeys[`key-${i}`] = k));
  const meta = {
    uuid: req.instanceId,
    name: req.hostname,
    hostname: req.fqdn ?? req.hostname,
    launch_index: 0,
    availability_zone: 'virtnode',
    public_keys: publicKeys,
    ...(req.defaultUser.sshAuthorizedKeys.length === 0 ? {} : { keys: req.defaultUser.sshAuthorizedKeys.map((data, i) => ({ name: `key-${i}`, type: 'ssh', data })) }),
  };
  return `${JSON.stringify(meta, null, 2)}\n`;
}

/** Every file of the drive, by its path in the drive. user_data is exactly what the NoCloud seed carries. */
export function renderConfigDrive(req: SeedRequest): ConfigDriveFiles {
  const userData = renderUserData(req).text; // validates the whole request (hostname, user, host keys)
  return {
    [`${CONFIG_DRIVE_DIR}/meta_data.json`]: renderMetaDataJson(req),
    [`${CONFIG_DRIVE_DIR}/user_data`]: userData,
    [`${CONFIG_DRIVE_DIR}/network_data.json`]: renderNetworkData(req),
  };
}
