import type { Command } from 'commander';
import { printer, table } from '../output.ts';
import { api } from '../api.ts';

export function registerPortCommands(program: Command): void {
  const port = program.command('port').description('user-mode port forwards: host port → guest port (live, and kept for later starts)');

  port
    .command('add')
    .description('forward a host port to a guest port (bound to 127.0.0.1 unless --address)')
    .argument('<name>', 'instance')
    .argument('<ports>', 'HOST:GUEST[/tcp|udp], e.g. 8080:80')
    .option('--address <address>', 'host address to bind, e.g. 0.0.0.0 for every address', '127.0.0.1')
    .action(async (name: string, ports: string, o: { address?: string }) => {
      const f = await (await api()).ports.add({ name, ports, ...(o.address === undefined ? {} : { address: o.address }) });
      process.stdout.write(`Forwarding ${f.hostAddress}:${f.hostPort}/${f.protocol} to ${name} port ${f.guestPort}\n`);
    });

  port
    .command('ls')
    .description("an instance's port forwards, with the SSH forward virtnode made")
    .argument('<name>', 'instance')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const rows = await (await api()).ports.list({ name });
      await print(rows, () => table(['HOST', 'GUEST', 'PROTOCOL', 'BY'], rows.map((f) => [`${f.hostAddress}:${f.hostPort}`, String(f.guestPort), f.protocol, f.owner === 'ssh' ? 'ssh (virtnode)' : (f.owner ?? 'user')])));
    });

  port
    .command('rm')
    .description('stop forwarding a host port')
    .argument('<name>', 'instance')
    .argument('<port>', 'HOST[/tcp|udp], e.g. 8080')
    .action(async (name: string, which: string) => {
      const f = await (await api()).ports.remove({ name, port: which });
      process.stdout.write(`Removed ${f.hostAddress}:${f.hostPort}/${f.protocol} from ${name}\n`);
    });
}
