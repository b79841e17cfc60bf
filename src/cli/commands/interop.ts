import type { Command } from 'commander';

export function registerInteropCommands(program: Command): void {
  const importCmd = program.command('import').description('define instances from other tools\' definitions');
  importCmd
    .command('libvirt')
    .description('define an instance from a libvirt domain XML; prints every element it did not map (the disk files are used where they are)')
    .argument('<source>', 'a domain XML file (virsh dumpxml NAME > FILE), or with --from the domain name')
    .option('--from <uri>', 'read the domain from libvirt through virsh dumpxml, e.g. qemu:///system')
    .option('--name <name>', 'the instance name (default: the domain name)')
    .option('--cpus <n>', "virtual CPUs instead of the XML's")
    .option('--memory <size>', "memory instead of the XML's, e.g. 2G")
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (source: string, o: { from?: string; name?: string; cpus?: string; memory?: string; format?: string }) => {
      const [{ api }, { printer }, { readFileSync }, { invalid }] = await Promise.all([import('../api.ts'), import('../output.ts'), import('node:fs'), import('../../lib/errors.ts')]);
      const print = printer(o.format);
      let xml: string | undefined;
      if (o.from === undefined) {
        try {
          xml = readFileSync(source, 'utf8');
        } catch (e) {
          throw invalid('source', `cannot read ${source}: ${(e as Error).message}`, 'give a libvirt domain XML file, or --from URI with a domain name');
        }
      }
      const cpus = o.cpus === undefined ? undefined : Number(o.cpus);
      if (cpus !== undefined && (!Number.isInteger(cpus) || cpus < 1)) throw invalid('--cpus', `"${o.cpus}" is not a number of CPUs`);
      const result = await (await api()).interop.importLibvirt({
        ...(xml === undefined ? { from: { uri: o.from!, domain: source } } : { xml }),
        ...(o.name === undefined ? {} : { name: o.name }),
        ...(cpus === undefined ? {} : { cpus }),
        ...(o.memory === undefined ? {} : { memory: o.memory }),
      });
      await print(result, () => {
        const i = result.instance;
        const lines = [
          `${i.name} defined from libvirt (uuid ${i.uuid}, ${i.cpus} CPU, ${i.memoryMiB} MiB); start it with: virtnode start ${i.name}`,
          ...result.disks.map((d) => `  disk ${d.path} (${d.format}): ${d.use} in place, never deleted by virtnode`),
          ...i.nics.map((n) => `  nic ${n.index} ${n.mac} on ${n.network}`),
          ...(result.warnings.length === 0 ? ['everything in the XML was mapped'] : [`${result.warnings.length} not mapped or mapped differently:`, ...result.warnings.map((w) => `  ${w.path}: ${w.message}`)]),
          '',
        ];
        return lines.join('\n');
      });
    });

  program
    .command('export')
    .description('write an instance in another tool\'s format (libvirt: a domain XML that virsh define accepts)')
    .argument('<name>')
    .requiredOption('--format <format>', 'libvirt')
    .option('-o, --output <file>', 'write it to this file (default: standard output)')
    .action(async (name: string, o: { format: string; output?: string }) => {
      const [{ api }, { invalid }] = await Promise.all([import('../api.ts'), import('../../lib/errors.ts')]);
      if (o.format !== 'libvirt') throw invalid('--format', `"${o.format}" is not a format virtnode writes`, 'use libvirt');
      const result = await (await api()).interop.export({ name, format: o.format });
      for (const w of result.warnings) process.stderr.write(`note: ${w}\n`);
      if (o.output === undefined) process.stdout.write(result.document);
      else {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(o.output, result.document, { flag: 'wx' }); // never overwrites
      }
    });

  program
    .command('inventory')
    .description("Ansible's dynamic inventory of the running launched instances (ansible -i SCRIPT, where SCRIPT runs `virtnode inventory \"$@\"`)")
    .option('--list', 'every host and group, with all host vars in _meta (the default)')
    .option('--host <name>', "one host's vars")
    .action(async (o: { list?: boolean; host?: string }) => {
      const [{ api }, { VirtnodeError, invalid }] = await Promise.all([import('../api.ts'), import('../../lib/errors.ts')]);
      if (o.list === true && o.host !== undefined) throw invalid('--host', 'give --list or --host, not both');
      const inventory = await (await api()).interop.inventory();
      if (o.host === undefined) {
        process.stdout.write(`${JSON.stringify(inventory, null, 2)}\n`);
        return;
      }
      const vars = (inventory['_meta'] as { hostvars: Record<string, unknown> }).hostvars[o.host];
      if (vars === undefined) {
        throw new VirtnodeError('NOT_FOUND', `--host: ${o.host} is not in the inventory`, { field: '--host', hint: 'the inventory lists launched instances that are running (virtnode ls)' });
      }
      process.stdout.write(`${JSON.stringify(vars, null, 2)}\n`);
    });
}
