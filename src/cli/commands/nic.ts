import type { Command } from 'commander';
import { printer, table } from '../output.ts';
import { api } from '../api.ts';

export function registerNicCommands(program: Command): void {
  const nic = program.command('nic').description("an instance's network interfaces: attach and detach, live or offline");

  nic
    .command('attach')
    .description('add a NIC on a network (hot-plugged when the instance runs)')
    .argument('<name>', 'instance')
    .argument('<network>', 'a managed network (see `virtnode network ls`), or user')
    .option('--ip <address>', 'static address on a nat/isolated network (default: a free one from its DHCP range)')
    .action(async (name: string, network: string, o: { ip?: string }) => {
      const attached = await (await api()).nics.attach({ name, network, ...(o.ip === undefined ? {} : { ip: o.ip }) });
      process.stdout.write(`Attached NIC ${attached.index} (${attached.mac}) on ${attached.network}${attached.reserved === undefined ? '' : `, address ${attached.reserved}`} to ${name}\n`);
    });

  nic
    .command('detach')
    .description('remove a NIC, by MAC or index (live: waits until the guest released it)')
    .argument('<name>', 'instance')
    .argument('<nic>', 'MAC address or NIC index (see `virtnode nic ls NAME`)')
    .action(async (name: string, which: string) => {
      const detached = await (await api()).nics.detach({ name, nic: which });
      process.stdout.write(`Detached NIC ${detached.index} (${detached.mac}) from ${name}\n`);
    });

  nic
    .command('ls')
    .description("an instance's NICs with their addresses (reservation, DHCP lease, guest agent)")
    .argument('<name>', 'instance')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const addresses = await (await api()).nics.list({ name });
      await print(addresses, () => table(['INDEX', 'MAC', 'NETWORK', 'RESERVED', 'LEASE', 'GUEST'], addresses.map((a) => [String(a.index), a.mac, a.network, a.reserved === undefined ? '-' : `${a.reserved}${a.staticAddress ? ' (static)' : ''}`, a.lease ?? '-', a.guest?.join(' ') ?? '-'])));
    });
}
