import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CallOptions } from '../../api/endpoint.ts';
import { formatSize } from '../../lib/units.ts';
import { api } from '../api.ts';
import { keyValues, printer, table } from '../output.ts';
import { interruptibly } from '../interrupt.ts';

const size = (n: number | undefined) => (n === undefined ? '-' : formatSize(n));

/** A copy (convert, import, export): Ctrl-C cancels it; its progress is shown to someone watching a terminal. */
async function copying<T>(label: string, call: (options: CallOptions) => Promise<T>): Promise<T> {
  const { progressReporter, transferTracker } = await import('../../images/pull/progress.ts');
  const tracker = process.stderr.isTTY ? transferTracker(progressReporter(process.stderr, label)) : undefined;
  return interruptibly(async (signal) => {
    const result = await call({ signal, ...(tracker === undefined ? {} : { onTransfer: (bytes, total) => tracker.update(bytes, total) }) });
    tracker?.finish();
    return result;
  });
}

export function registerStorageCommands(program: Command): void {
  const pool = program.command('pool').description('storage pools: directories or NFS exports that hold volumes');

  pool
    .command('create')
    .description('register an existing directory (dir, shared-dir) or an NFS export (nfs) as a pool')
    .argument('<name>', 'pool name (a DNS label)')
    .option('--type <type>', 'dir (local), shared-dir (mounted at the same path on every host) or nfs (QEMU reaches the export itself)', 'dir')
    .option('--path <dir>', 'dir, shared-dir: absolute path of an existing directory (with --remote: on the daemon\'s host)')
    .option('--source <server:/export>', 'nfs: the NFS server and export, e.g. 192.0.2.10:/srv/vm-disks')
    .action(async (name: string, o: { type: string; path?: string; source?: string }) => {
      const p = await (await api()).pools.create({ name, type: o.type, ...(o.path === undefined ? {} : { path: o.path }), ...(o.source === undefined ? {} : { source: o.source }) });
      process.stdout.write(`Created ${p.type === 'dir' ? '' : `${p.type} `}pool ${p.name} at ${p.path}\n`);
    });

  pool
    .command('ls')
    .description('pools with the size, use and free space of the filesystem holding each')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const pools = await (await api()).pools.list();
      await print(pools, () =>
        table(
          ['NAME', 'TYPE', 'PATH', 'VOLUMES', 'VOLUME ALLOC', 'FS CAPACITY', 'FS ALLOCATION', 'FS AVAILABLE'],
          pools.map((p) =>
            p.problem === undefined
              ? [p.name, p.type, p.path, String(p.volumes), formatSize(p.volumeAllocation), formatSize(p.capacity), formatSize(p.allocation), formatSize(p.available)]
              : [p.name, p.type, p.path, String(p.volumes), '?', '?', '?', `? (${p.problem})`],
          ),
        ) +
          'FS columns are of the filesystem holding the pool (shared with anything else on it). Instance disks made by\n' +
          'create/launch live in their instance directories, not in a pool: see `virtnode volume ls --all`.\n',
      );
    });

  pool
    .command('info')
    .description('one pool in detail')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const p = await (await api()).pools.get({ name });
      await print(p, () =>
        keyValues([
          ['Name', p.name],
          ['Type', `${p.type}${p.shared ? ' (shared)' : ''}`],
          ['Path', p.path],
          ...(p.source === undefined ? [] : [['Source', p.source] as [string, string]]),
          ...(p.problem === undefined ? [] : [['Problem', p.problem] as [string, string]]),
          ['Volumes', (p.volumeNames ?? []).length === 0 ? '0' : `${p.volumeNames!.length} (${p.volumeNames!.join(', ')})`],
          ['Volume allocation', formatSize(p.volumeAllocation)],
          ['Other files', p.otherFiles],
          ['FS capacity', formatSize(p.capacity)],
          ['FS allocation', formatSize(p.allocation)],
          ['FS available', formatSize(p.available)],
          ['Created', p.createdAt],
        ]),
      );
    });

  pool
    .command('rm')
    .description('forget a pool (its directory stays); refused while it holds volumes')
    .argument('<name>')
    .action(async (name: string) => {
      await (await api()).pools.delete({ name });
      process.stdout.write(`Removed pool ${name}\n`);
    });

  const volume = program.command('volume').description('volumes: disk images in pools, attachable to instances');

  volume
    .command('create')
    .description('a new empty disk image')
    .argument('<name>', 'volume name (a DNS label)')
    .requiredOption('--size <size>', 'virtual size: 512M, 10G, 1T')
    .option('--format <format>', 'qcow2 (sparse, snapshots) or raw', 'qcow2')
    .option('--preallocate', 'reserve the space on the host now')
    .option('--pool <pool>', 'pool to create it in', 'default')
    .action(async (name: string, o: { size: string; format: string; preallocate?: boolean; pool: string }) => {
      const v = await (await api()).volumes.create({ name, size: o.size, format: o.format, preallocate: o.preallocate === true, pool: o.pool });
      process.stdout.write(`Created volume ${v.name} (${v.format}, ${size(v.virtualSize)}) in pool ${v.pool}: ${v.path}\n`);
    });

  volume
    .command('ls')
    .description('volumes, with virtual size, allocation and the instance using each')
    .option('--pool <pool>', 'only this pool')
    .option('--all', 'also the instances\' own disks (made by create/launch in their directories)')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { pool?: string; all?: boolean; format?: string }) => {
      const print = printer(o.format);
      const client = await api();
      const volumes = await client.volumes.list(o.pool === undefined ? {} : { pool: o.pool });
      const disks = o.all ? await client.volumes.instanceDisks() : [];
      const rows = [
        ...volumes.map((v) => [v.name, v.pool, v.format, size(v.virtualSize), size(v.allocation), v.attachedTo ?? '-', v.problem ?? (v.overlay ? 'written through a snapshot overlay' : '')]),
        ...disks.map((d) => [`${d.instance}/${d.id}`, '(instance)', d.format, size(d.virtualSize), size(d.allocation), d.instance, d.path]),
      ];
      await print(o.all ? { volumes, instanceDisks: disks } : volumes, () => table(['NAME', 'POOL', 'FORMAT', 'SIZE', 'ALLOCATION', 'ATTACHED TO', 'NOTE'], rows));
    });

  volume
    .command('info')
    .description('one volume: virtual size, allocation, format, backing chain')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const v = await (await api()).volumes.get({ name });
      await print(v, () =>
        keyValues([
          ['Name', v.name],
          ['Pool', v.pool],
          ['Path', v.path],
          ['Format', v.format],
          ['Virtual size', size(v.virtualSize)],
          ['Allocation', size(v.allocation)],
          ['Attached to', v.attachedTo],
          ['Overlay', v.overlay],
          ...(v.chain ?? []).slice(1).map((l, i): [string, string] => [i === 0 ? 'Backing chain' : '', `${l.path} (${l.format})`]),
          ...(v.activeChain ?? []).map((l, i): [string, string] => [i === 0 ? 'Active chain' : '', `${l.path} (${l.format})`]),
          ...(v.chain?.[0]?.snapshots ?? []).map((s, i): [string, string] => [i === 0 ? 'Internal snapshots' : '', `${s.name} (${s.date}${s.vmStateSize > 0 ? ', with memory' : ''})`]),
          ['Created', v.createdAt],
        ]),
      );
    });

  volume
    .command('resize')
    .description('grow a volume (live when its instance runs); shrinking needs --allow-shrink')
    .argument('<name>')
    .requiredOption('--size <size>', 'new virtual size')
    .option('--allow-shrink', 'allow a smaller size (data past the end is lost)')
    .action(async (name: string, o: { size: string; allowShrink?: boolean }) => {
      const r = await (await api()).volumes.resize({ name, size: o.size, allowShrink: o.allowShrink === true });
      process.stdout.write(r.from === r.to ? `Volume ${name} is already ${formatSize(r.to)}\n` : `Resized volume ${name} from ${formatSize(r.from)} to ${formatSize(r.to)}${r.live ? ' (live)' : ''}\n`);
    });

  volume
    .command('convert')
    .description('rewrite a volume in another format (not while attached)')
    .argument('<name>')
    .requiredOption('--format <format>', 'qcow2 or raw')
    .action(async (name: string, o: { format: string }) => {
      const v = await copying(`volume ${name}`, async (options) => (await api()).volumes.convert({ name, format: o.format }, options));
      process.stdout.write(`Converted volume ${name} to ${v.format}: ${v.path}\n`);
    });

  volume
    .command('check')
    .description('check a volume for consistency (qemu-img check)')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const r = await (await api()).volumes.check({ name });
      await print(r, () =>
        !r.supported
          ? `Volume ${name}: raw images have no metadata to check\n`
          : r.clean
            ? `Volume ${name}: no errors found\n`
            : `Volume ${name}: ${r.corruptions} corruption(s), ${r.leaks} leaked cluster(s), ${r.checkErrors} check error(s)\n`,
      );
      if (r.corruptions > 0 || r.checkErrors > 0) process.exitCode = 9;
    });

  // Files to import or export are sent by their absolute path: the daemon has another working directory.
  volume
    .command('import')
    .description('copy an image file into a new volume (backing chain flattened)')
    .argument('<file>', 'the image file (with --remote: a file on the daemon\'s host)')
    .option('--name <name>', 'volume name (default: from the file name)')
    .option('--pool <pool>', 'pool', 'default')
    .option('--format <format>', 'qcow2 or raw (default: raw stays raw, anything else becomes qcow2)')
    .action(async (file: string, o: { name?: string; pool: string; format?: string }) => {
      const input = { file: resolve(file), pool: o.pool, ...(o.name === undefined ? {} : { name: o.name }), ...(o.format === undefined ? {} : { format: o.format }) };
      const v = await copying(file, async (options) => (await api()).volumes.import(input, options));
      process.stdout.write(`Imported ${file} as volume ${v.name} (${v.format}) in pool ${v.pool}\n`);
    });

  volume
    .command('export')
    .description('copy a volume out to a new file')
    .argument('<name>')
    .argument('<file>', 'a new file (with --remote: on the daemon\'s host)')
    .option('--format <format>', 'qcow2 or raw (default: the volume\'s)')
    .action(async (name: string, file: string, o: { format?: string }) => {
      const input = { name, file: resolve(file), ...(o.format === undefined ? {} : { format: o.format }) };
      const r = await copying(`volume ${name}`, async (options) => (await api()).volumes.export(input, options));
      process.stdout.write(`Exported volume ${name} to ${r.path} (${r.format})\n`);
    });

  volume
    .command('rm')
    .description('delete a volume and its file; refused while attached')
    .argument('<name>')
    .action(async (name: string) => {
      await (await api()).volumes.delete({ name });
      process.stdout.write(`Removed volume ${name}\n`);
    });

  const disk = program.command('disk').description('attach volumes to instances as virtio disks (live or stopped)');

  disk
    .command('attach')
    .description('attach a volume (hot-plugged if the instance runs; kept for next start)')
    .argument('<instance>')
    .argument('<volume>')
    .action(async (instance: string, vol: string) => {
      const r = await (await api()).disks.attach({ name: instance, volume: vol });
      process.stdout.write(`Attached volume ${vol} to ${instance} as ${r.diskId}${r.live ? ' (hot-plugged)' : ' (from next start)'}\n`);
    });

  disk
    .command('detach')
    .description('detach a volume (live: waits until the guest has released it)')
    .argument('<instance>')
    .argument('<volume>')
    .action(async (instance: string, vol: string) => {
      const r = await (await api()).disks.detach({ name: instance, volume: vol });
      process.stdout.write(`Detached volume ${vol} from ${instance}${r.live ? ' (the guest released it)' : ''}\n`);
    });
}
