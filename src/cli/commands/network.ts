import type { Command } from 'commander';
import { networkView } from '../../api/views.ts';
import { invalid } from '../../lib/errors.ts';
import { keyValues, parseFormat, structured, table } from '../output.ts';
import { loadInstanceService } from '../load-service.ts';

async function networks() {
  const s = await loadInstanceService();
  await s.ensureReconciled();
  return s.networks;
}

export { networkView } from '../../api/views.ts';

export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('managed networks: NAT or isolated (bridge + DHCP + DNS), or an existing bridge (root)');

  network
    .command('create')
    .description('create a network: --nat (default), --isolated (no route out) or --bridge EXISTING_BRIDGE')
    .argument('<name>', 'network name: a DNS label')
    .option('--subnet <cidr>', 'IPv4 subnet for --nat/--isolated (default 10.77.0.0/24); the host takes its first address')
    .option('--nat', 'guests reach the outside through masquerade (default)')
    .option('--isolated', 'guests reach each other and the host, nothing else')
    .option('--bridge <bridge>', 'NICs join this existing Linux bridge')
    .option('--dhcp-range <first-last>', 'addresses DHCP hands out (default: the whole subnet after the gateway)')
    .option('--domain <domain>', 'DNS domain: each instance resolves as NAME.DOMAIN (default NETWORK.internal)')
    .option('--format <format>', 'table, json or yaml')
    .action(async (name: string, o: Record<string, string | boolean | undefined>) => {
      if (o['format'] !== undefined) parseFormat(o['format'] as string);
      const modes = [o['nat'] && 'nat', o['isolated'] && 'isolated', o['bridge'] !== undefined && 'bridge'].filter(Boolean) as string[];
      if (modes.length > 1) throw invalid('mode', `--${modes.join(' and --')} exclude each other`, 'give one of --nat, --isolated, --bridge BRIDGE');
      const mode = modes[0] ?? 'nat';
      const service = await networks();
      const { network: created, warnings } = await service.create({
        name,
        mode,
        ...(typeof o['subnet'] === 'string' ? { subnet: o['subnet'] } : {}),
        ...(typeof o['dhcpRange'] === 'string' ? { dhcpRange: o['dhcpRange'] } : {}),
        ...(typeof o['domain'] === 'string' ? { domain: o['domain'] } : {}),
        ...(typeof o['bridge'] === 'string' ? { bridge: o['bridge'] } : {}),
      });
      for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
      if (o['format'] !== undefined && o['format'] !== 'table') {
        process.stdout.write(await structured(networkView(created), parseFormat(o['format'] as string) as 'json' | 'yaml'));
        return;
      }
      const detail = created.ipv4 === undefined ? `bridge ${created.bridge}` : `${created.ipv4.subnet} on bridge ${created.bridge}, DHCP ${created.ipv4.dhcpStart}-${created.ipv4.dhcpEnd}, domain ${created.domain}`;
      process.stdout.write(`Created network ${created.name} (${created.mode}: ${detail})\n`);
    });

  network
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const format = parseFormat(o.format);
      const service = await networks();
      const all = service.list();
      if (format !== 'table') {
        process.stdout.write(await structured(all.map((n) => networkView(n)), format));
        return;
      }
      const rows = all.map((n) => [n.name, n.mode, n.ipv4?.subnet ?? '-', n.bridge, n.domain ?? '-', String(new Set(service.instances.nicsOn(n.name).map((x) => x.instance)).size)]);
      process.stdout.write(table(['NAME', 'MODE', 'SUBNET', 'BRIDGE', 'DOMAIN', 'INSTANCES'], rows));
    });

  network
    .command('info')
    .description('show one network: addresses, host-side pieces, instances, warnings')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const format = parseFormat(o.format);
      const service = await networks();
      const n = service.mustGet(name);
      const status = await service.status(n);
      if (format !== 'table') {
        process.stdout.write(await structured(networkView(n, status), format));
        return;
      }
      process.stdout.write(
        keyValues([
          ['Name', n.name],
          ['Mode', n.mode],
          ['Bridge', `${n.bridge}${status.bridge ? '' : ' (missing)'}`],
          ['Subnet', n.ipv4?.subnet],
          ['Gateway', n.ipv4?.gateway],
          ['DHCP range', n.ipv4 === undefined ? undefined : `${n.ipv4.dhcpStart}-${n.ipv4.dhcpEnd}`],
          ['Domain', n.domain],
          ['dnsmasq', n.mode === 'bridge' ? undefined : status.dnsmasqPid === undefined ? 'not running' : `pid ${status.dnsmasqPid}`],
          ['nftables', n.mode === 'bridge' ? undefined : `table ip virtnode_${n.id}${status.nftTable ? '' : ' (missing)'}`],
          ['Instances', status.instances.join(', ') || '-'],
          ...status.warnings.map((w, k): [string, string] => [k === 0 ? 'Warning' : '', w]),
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
      await (await networks()).remove(name);
      process.stdout.write(`Removed network ${name}\n`);
    });

  network
    .command('leases')
    .description("the network's DHCP leases, with the instance each belongs to")
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const format = parseFormat(o.format);
      const service = await networks();
      const byMac = new Map(service.instances.nicsOn(name).map((n) => [n.mac, n.instance]));
      const leases = service.leases(name).map((l) => ({
        mac: l.mac,
        address: l.address,
        hostname: l.hostname,
        instance: byMac.get(l.mac),
        expires: l.expires?.toISOString(),
      }));
      if (format !== 'table') {
        process.stdout.write(await structured(leases, format));
        return;
      }
      process.stdout.write(table(['MAC', 'ADDRESS', 'HOSTNAME', 'INSTANCE', 'EXPIRES'], leases.map((l) => [l.mac, l.address, l.hostname ?? '-', l.instance ?? '-', l.expires ?? 'never'])));
    });
}
