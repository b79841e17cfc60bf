import type { Command } from 'commander';
import type { NicAddresses } from '../../instances/addresses.ts';
import type { Instance } from '../../instances/model.ts';
import { invalid } from '../../lib/errors.ts';
import { formatSize, MIB } from '../../lib/units.ts';
import { keyValues, parseFormat, structured, table } from '../output.ts';
import { loadInstanceService as service } from '../load-service.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)(ms|s|m)?$/.exec(text);
  if (match === null) throw invalid('--timeout', `"${text}" is not a duration`, 'use seconds (60), or 90s, 2m, 500ms');
  const factor = { ms: 1, s: 1000, m: 60_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm'];
  return Number(match[1]) * factor;
}

/** The stable, documented view of an instance (JSON/YAML output and, later, the API). */
export function instanceView(i: Instance, addresses?: NicAddresses[]) {
  return {
    name: i.name,
    state: i.state,
    ...(i.stateReason === undefined ? {} : { reason: i.stateReason }),
    uuid: i.uuid,
    smbiosUuid: i.smbiosUuid,
    cpus: i.spec.cpus,
    memoryMiB: i.spec.memoryMiB,
    accel: i.spec.accel,
    disks: i.spec.disks.map((d) => ({ id: d.id, path: d.path, format: d.format })),
    nics: i.nics.map((n) => {
      const a = addresses?.find((x) => x.index === n.index);
      return {
        index: n.index,
        mac: n.mac,
        network: n.network,
        ...(n.address === undefined ? {} : { address: n.address, staticAddress: n.staticAddress ?? false }),
        ...(a?.lease === undefined ? {} : { lease: a.lease }),
        ...(a?.guest === undefined ? {} : { guestAddresses: a.guest }),
      };
    }),
    ...((i.spec.portForwards ?? []).length === 0 ? {} : { portForwards: i.spec.portForwards }),
    ...(i.spec.boot === undefined ? {} : { boot: i.spec.boot }),
    ...(i.spec.image === undefined ? {} : { image: { name: i.spec.image.name, sha256: i.spec.image.sha256 } }),
    ...(i.spec.instanceId === undefined ? {} : { instanceId: i.spec.instanceId }),
    ...(i.spec.ssh === undefined
      ? {}
      : {
          ssh: {
            user: i.spec.ssh.user,
            ...(i.spec.ssh.hostPort === undefined ? {} : { address: `127.0.0.1:${i.spec.ssh.hostPort}` }),
            hostKeyFingerprints: i.spec.ssh.hostKeyFingerprints,
          },
        }),
    ...(i.spec.readiness === undefined ? {} : { readiness: i.spec.readiness }),
    ...(i.pid === undefined ? {} : { pid: i.pid }),
    createdAt: i.createdAt,
    updatedAt: i.updatedAt,
  };
}

function nicLine(n: Instance['nics'][number], a: NicAddresses | undefined): string {
  const parts = [`${n.mac} (${n.network})`];
  if (n.address !== undefined) parts.push(`${n.staticAddress ? 'static' : 'reserved'} ${n.address}`);
  if (a?.lease !== undefined) parts.push(`lease ${a.lease}`);
  if (a?.guest !== undefined && a.guest.length > 0) parts.push(`guest ${a.guest.join(' ')}`);
  return parts.join(', ');
}

async function printInstance(i: Instance, format: string | undefined, addresses: NicAddresses[]): Promise<void> {
  const f = parseFormat(format);
  if (f !== 'table') {
    process.stdout.write(await structured(instanceView(i, addresses), f));
    return;
  }
  process.stdout.write(
    keyValues([
      ['Name', i.name],
      ['State', i.stateReason === undefined ? i.state : `${i.state} (${i.stateReason})`],
      ['UUID', i.uuid],
      ['SMBIOS UUID', i.smbiosUuid],
      ['CPUs', i.spec.cpus],
      ['Memory', formatSize(i.spec.memoryMiB * MIB)],
      ['Accelerator', i.spec.accel],
      ...i.spec.disks.map((d): [string, string] => [`Disk ${d.id}`, `${d.path} (${d.format})`]),
      ...i.nics.map((n): [string, string] => [`NIC ${n.index}`, nicLine(n, addresses.find((a) => a.index === n.index))]),
      ...(i.spec.portForwards ?? []).map((p, k): [string, string] => [k === 0 ? 'Ports' : '', `${p.hostAddress}:${p.hostPort} -> ${p.guestPort}/${p.protocol}`]),
      ['Image', i.spec.image === undefined ? undefined : `${i.spec.image.name} (sha256 ${i.spec.image.sha256.slice(0, 16)}…)`],
      ['Instance-id', i.spec.instanceId],
      ['SSH', i.spec.ssh?.hostPort === undefined ? undefined : `${i.spec.ssh.user}@127.0.0.1 port ${i.spec.ssh.hostPort} (virtnode shell ${i.name})`],
      ...(i.spec.ssh?.hostKeyFingerprints ?? []).map((f, n): [string, string] => [n === 0 ? 'Host keys' : '', f]),
      ['Cloud-init', i.spec.readiness === undefined ? undefined : `${i.spec.readiness.detail} (at ${i.spec.readiness.at})`],
      ['Kernel', i.spec.boot?.kernel],
      ['Cmdline', i.spec.boot?.cmdline],
      ['QEMU pid', i.pid],
      ['Created', i.createdAt],
    ]),
  );
}

export function registerInstanceCommands(program: Command): void {
  program
    .command('create')
    .description('define a new VM (it starts with `virtnode start`, or now with --start)')
    .argument('<name>', 'instance name: a DNS label (lowercase letters, digits, hyphens)')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .option('--memory <size>', 'memory, e.g. 512M, 2G', '512M')
    .option('--disk <path>', 'use an existing qcow2 or raw disk image')
    .option('--disk-size <size>', 'create a new empty qcow2 disk of this size, e.g. 10G')
    .option('--kernel <file>', 'boot this kernel directly')
    .option('--initrd <file>', 'initramfs for --kernel')
    .option('--cmdline <text>', 'kernel command line for --kernel')
    .option('--accel <accel>', 'auto, kvm or tcg', 'auto')
    .option('--network <name>', 'user (NAT through QEMU, no root needed, the default), none, or a managed network; repeatable, one NIC each', collect)
    .option('--ip <address>', 'static address on the i-th managed --network (repeatable; auto = DHCP)', collect)
    .option('--start', 'start it right away')
    .option('--format <format>', 'table, json or yaml')
    .action(async (name: string, o: Record<string, string | string[] | boolean | undefined>) => {
      if (o['format'] !== undefined) parseFormat(o['format'] as string); // bad input is refused before anything is made
      const s = await service();
      const request = { name } as Record<string, string>;
      for (const key of ['cpus', 'memory', 'disk', 'diskSize', 'kernel', 'initrd', 'cmdline', 'accel']) {
        if (typeof o[key] === 'string') request[key] = o[key];
      }
      const nics = { ...(o['network'] === undefined ? {} : { network: o['network'] as unknown as string[] }), ...(o['ip'] === undefined ? {} : { ip: o['ip'] as unknown as string[] }) };
      let instance = await s.create({ ...(request as unknown as Parameters<typeof s.create>[0]), ...nics });
      if (o['start']) instance = await s.start(name);
      if (o['format'] !== undefined) await printInstance(instance, o['format'] as string, []);
      else process.stdout.write(`Created instance ${instance.name}${o['start'] ? ', running' : ''} (uuid ${instance.uuid})\n`);
    });

  program
    .command('start')
    .description('start a VM')
    .argument('<name>')
    .action(async (name: string) => {
      const s = await service();
      const i = await s.start(name);
      process.stdout.write(`Started ${i.name} (pid ${i.pid}${i.stateReason ? `, ${i.stateReason}` : ''})\n`);
    });

  program
    .command('stop')
    .description('shut a VM down through the ACPI power button, forcing it off after --timeout')
    .argument('<name>')
    .option('--timeout <duration>', 'how long the guest gets to power off (seconds, or 90s, 2m)', '60')
    .option('-f, --force', 'power off at once, like pulling the plug')
    .action(async (name: string, o: { timeout?: string; force?: boolean }) => {
      const s = await service();
      const timeoutMs = parseTimeout(o.timeout);
      const result = await s.stop(name, { force: o.force === true, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      process.stdout.write(`Stopped ${name}: ${result.instance.stateReason}\n`);
    });

  program
    .command('restart')
    .description('stop a VM (ACPI, then forced after --timeout) and start it again')
    .argument('<name>')
    .option('--timeout <duration>', 'how long the guest gets to power off', '60')
    .option('-f, --force', 'power off at once instead of asking the guest')
    .action(async (name: string, o: { timeout?: string; force?: boolean }) => {
      const s = await service();
      const timeoutMs = parseTimeout(o.timeout);
      const i = await s.restart(name, { force: o.force === true, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      process.stdout.write(`Restarted ${i.name} (pid ${i.pid})\n`);
    });

  program
    .command('pause')
    .description('freeze a running VM (its CPUs stop; memory stays)')
    .argument('<name>')
    .action(async (name: string) => {
      await (await service()).pause(name);
      process.stdout.write(`Paused ${name}\n`);
    });

  program
    .command('resume')
    .description('continue a paused VM')
    .argument('<name>')
    .action(async (name: string) => {
      await (await service()).resume(name);
      process.stdout.write(`Resumed ${name}\n`);
    });

  program
    .command('delete')
    .description('delete a VM and the disks virtnode made for it')
    .argument('<name>')
    .option('-f, --force', 'kill it first if it is running')
    .action(async (name: string, o: { force?: boolean }) => {
      await (await service()).delete(name, { force: o.force === true });
      process.stdout.write(`Deleted ${name}\n`);
    });

  program
    .command('list')
    .alias('ls')
    .description('list VMs and their states')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const format = parseFormat(o.format);
      const s = await service();
      const all = await s.list();
      const { nicAddresses, shownAddress } = await import('../../instances/addresses.ts');
      const addresses = await Promise.all(all.map((i) => nicAddresses(s, i)));
      if (format !== 'table') {
        process.stdout.write(await structured(all.map((i, k) => instanceView(i, addresses[k])), format));
        return;
      }
      const rows = all.map((i, k) => [
        i.name,
        i.state,
        String(i.spec.cpus),
        formatSize(i.spec.memoryMiB * MIB),
        i.nics.map((n) => n.mac).join(',') || '-',
        addresses[k]!.map((a) => shownAddress(a)).filter((a) => a !== undefined).join(',') || '-',
        i.stateReason ?? '',
      ]);
      process.stdout.write(table(['NAME', 'STATE', 'CPUS', 'MEMORY', 'MAC', 'ADDRESSES', 'REASON'], rows));
    });

  program
    .command('info')
    .description('show one VM in detail')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const s = await service();
      const instance = await s.get(name);
      const { nicAddresses } = await import('../../instances/addresses.ts');
      await printInstance(instance, o.format, await nicAddresses(s, instance, { agent: true }));
    });

  program
    .command('reconcile')
    .description('repair what an interrupted virtnode left behind (also done automatically)')
    .action(async () => {
      const s = await service();
      const { reconcile } = await import('../../instances/reconcile.ts');
      const report = await reconcile(s, { deep: true });
      process.stdout.write(report.repaired.length === 0 ? 'Nothing to repair\n' : `${report.repaired.join('\n')}\n`);
    });
}
