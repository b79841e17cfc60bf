import type { Command } from 'commander';
import { invalid } from '../../lib/errors.ts';
import { api } from '../api.ts';
import { keyValues, printer, table } from '../output.ts';

function vniOption(text: string): number {
  if (!/^\d{1,8}$/.test(text)) throw invalid('vni', `"${text}" is not a number`, 'use 1-16777215');
  return Number(text);
}

export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('managed networks: NAT or isolated (bridge + DHCP + DNS), or an existing bridge (root)');

  network
    .command('create')
    .description('create a network: --nat (default), --isolated (no route out) or --bridge EXISTING_BRIDGE')
    .argument('<name>', 'network name: a DNS label')
    .option('--subnet <cidr>', 'IPv4 subnet for --nat/--isolated (default: the first /24 of 10.77.0.0/16, then 172.31.0.0/16, that no network or route uses); the host takes its first address')
    .option('--nat', 'guests reach the outside through masquerade (default)')
    .option('--isolated', 'guests reach each other and the host, nothing else')
    .option('--bridge <bridge>', 'NICs join this existing Linux bridge')
    .option('--dhcp-range <first-last>', 'addresses DHCP hands out (default: the whole subnet after the gateway)')
    .option('--domain <domain>', 'DNS domain: each instance resolves as NAME.DOMAIN (default NETWORK.internal)')
    .option('--vni <n>', 'in a cluster, --nat/--isolated: the VXLAN network identifier joining the hosts (default: a free one)')
    .option('--format <format>', 'table, json or yaml')
    .action(async (name: string, o: Record<string, string | boolean | undefined>) => {
      const print = printer(o['format'] as string | undefined);
      const modes = [o['nat'] && 'nat', o['isolated'] && 'isolated', o['bridge'] !== undefined && 'bridge'].filter(Boolean) as string[];
      if (modes.length > 1) throw invalid('mode', `--${modes.join(' and --')} exclude each other`, 'give one of --nat, --isolated, --bridge BRIDGE');
      const mode = modes[0] ?? 'nat';
      const created = await (await api()).networks.create({
        name,
        mode: mode as 'nat' | 'isolated' | 'bridge',
        ...(typeof o['subnet'] === 'string' ? { subnet: o['subnet'] } : {}),
        ...(typeof o['dhcpRange'] === 'string' ? { dhcpRange: o['dhcpRange'] } : {}),
        ...(typeof o['domain'] === 'string' ? { domain: o['domain'] } : {}),
        ...(typeof o['bridge'] === 'string' ? { bridge: o['bridge'] } : {}),
        ...(typeof o['vni'] === 'string' ? { vni: vniOption(o['vni']) } : {}),
      });
      for (const w of created.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
      const detail = created.subnet === undefined ? `bridge ${created.bridge}` : `${created.subnet} on bridge ${created.bridge}, DHCP ${created.dhcpRange}, domain ${created.domain}`;
      await print(created, () => `Created network ${created.name} (${created.mode}: ${detail})\n`);
    });

  network
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const all = await (await api()).networks.list();
      await print(all, () => table(['NAME', 'MODE', 'SUBNET', 'BRIDGE', 'DOMAIN', 'INSTANCES'], all.map((n) => [n.name, n.mode, n.subnet ?? '-', n.bridge, n.domain ?? '-', String(n.instances?.length ?? 0)])));
    });

  network
    .command('info')
    .description('show one network: addresses, host-side pieces, instances, warnings')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const n = await (await api()).networks.get({ name });
      // A cluster network whose DHCP host is another: no dnsmasq and no nftables table here, by design.
      const otherHostsDhcp = n.dhcpHost !== undefined && n.dnsmasqPid === undefined && n.nftTableExists !== true;
      await print(n, () =>
        keyValues([
          ['Name', n.name],
          ['Mode', n.mode],
          ['Bridge', `${n.bridge}${n.bridgeExists ? '' : ' (missing)'}`],
          ['Subnet', n.subnet],
          ['Gateway', n.gateway],
          ['DHCP range', n.dhcpRange],
          ['Domain', n.domain],
          ['dnsmasq', n.mode === 'bridge' ? undefined : otherHostsDhcp ? `on host ${n.dhcpHost}` : n.dnsmasqPid === undefined ? 'not running' : `pid ${n.dnsmasqPid}`],
          ['nftables', n.nftTable === undefined || otherHostsDhcp ? undefined : `table ${n.nftTable}${n.nftTableExists ? '' : ' (missing)'}`],
          ['Cluster', n.cluster === true ? (n.vni === undefined ? 'cluster-wide (the bridge on each host)' : `cluster-wide: VXLAN ${n.vni}${n.vxlanExists === false ? ' (missing here)' : ''}, DHCP/DNS and gateway on ${n.dhcpHost}`) : undefined],
          ['Instances', n.instances?.join(', ') || '-'],
          ...(n.warnings ?? []).map((w, k): [string, string] => [k === 0 ? 'Warning' : '', w]),
          ['Created', n.createdAt],
        ]),
      );
    });

  network
    .command('rm')
    .alias('delete')
    .description('remove a network and everything of it on the host (refused while instances use it)')
    .argument('<name>')
    .action(async (name: string) => {
      await (await api()).networks.delete({ name });
      process.stdout.write(`Removed network ${name}\n`);
    });

  network
    .command('leases')
    .description("the network's DHCP leases, with the instance each belongs to")
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const leases = await (await api()).networks.leases({ name });
      await print(leases, () => table(['MAC', 'ADDRESS', 'HOSTNAME', 'INSTANCE', 'EXPIRES'], leases.map((l) => [l.mac, l.address, l.hostname ?? '-', l.instance ?? '-', l.expires ?? 'never'])));
    });
}
