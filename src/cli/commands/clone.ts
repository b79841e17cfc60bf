import type { Command } from 'commander';
import { validateName } from '../../lib/names.ts';
import { formatSize } from '../../lib/units.ts';
import { api } from '../api.ts';
import { keyValues, printer, table } from '../output.ts';

async function templates() {
  return (await api()).templates;
}

const LINKED_HELP = [
  'a linked clone: a qcow2 overlay on the source disk, made in constant time whatever the size. The disk under it',
  'must then never change: from a template it is its sealed disk; from a stopped instance, that instance\'s current',
  'disk becomes a read-only base that both sit on (each writes only its own overlay). Without --linked: a full,',
  'independent copy (qemu-img convert, with progress)',
].join(' ');

export function registerCloneCommands(program: Command): void {
  program
    .command('clone')
    .description('make a new instance from a stopped instance or a template, with an identity of its own (UUID, SMBIOS UUID, MAC, instance-id, hostname, SSH host keys; machine-id and DHCP identity new at first boot)')
    .argument('<src>', 'a stopped instance (its copy is sealed offline) or a template')
    .argument('<new>', 'the new instance name (also its hostname)')
    .option('--linked', LINKED_HELP)
    .option('--start', 'start it right away')
    .option('--format <format>', 'table, json or yaml')
    .addHelpText('after', '\nA running instance is never cloned (its disk is in use): stop it first, or make it a template.')
    .action(async (src: string, name: string, o: { linked?: boolean; start?: boolean; format?: string }) => {
      const print = printer(o.format);
      const { invalid } = await import('../../lib/errors.ts');
      validateName('SRC', src);
      validateName('NEW', name);
      if (src === name) throw invalid('NEW', `"${name}" is the source's own name`, 'give the clone a new name');
      const [{ interruptibly }, { cloneAndStart }, { transferOutput }] = await Promise.all([import('../interrupt.ts'), import('../../app/clone-and-start.ts'), import('../progress.ts')]);
      const client = await api();
      const request = { source: src, name, linked: o.linked === true, start: o.start === true };
      const { instance, clone: result } = await interruptibly((signal) => cloneAndStart(client, request, { ...transferOutput(process.stderr, 'copying'), signal }));
      const how = result.mode === 'linked' ? `linked clone (overlay on ${result.base ?? `template ${src}`})` : 'full copy';
      await print({ ...instance, clone: result }, () =>
        [
          `Cloned ${result.from} ${src} into ${instance.name}${o.start ? ', running' : ''}: ${how}`,
          `  uuid:        ${instance.uuid} (SMBIOS ${instance.smbiosUuid})`,
          `  mac:         ${instance.nics.map((n) => n.mac).join(', ') || '-'}`,
          `  instance-id: ${instance.instanceId}`,
          `  sealed:      ${result.seal === null ? `no need (template ${src} is sealed)` : result.seal.summary}`,
          ...(o.start ? [] : [`  start it:    virtnode start ${instance.name}`]),
          '',
        ].join('\n'),
      );
    });

  const template = program.command('template').description('templates: sealed, read-only disks to launch and clone from');

  template
    .command('create')
    .description('turn an instance into a template: stop it, seal its disk (through the guest agent if it runs one, else offline), keep the disk read-only, remove the instance')
    .argument('<instance>')
    .argument('[name]', 'the template name (default: the instance name)')
    .option('--warm', 'also boot it once and keep its memory just before the first boot: launches then load it instead of booting')
    .action(async (instance: string, name: string | undefined, o: { warm?: boolean }) => {
      validateName('INSTANCE', instance);
      if (name !== undefined) validateName('NAME', name);
      const { interruptibly } = await import('../interrupt.ts');
      const t = await templates();
      await interruptibly(async (signal) => {
        const result = await t.create({ instance, ...(name === undefined ? {} : { name }), ...(o.warm === true ? { warm: true } : {}) }, {
          signal,
          onPhase: (phase, detail, elapsedMs) => process.stderr.write(`[${(elapsedMs / 1000).toFixed(1).padStart(6)} s] ${phase.padEnd(6)} ${detail}\n`),
        });
        process.stdout.write(`Template ${result.template.name} made of ${instance}; sealed ${result.seal.summary}\n`);
      });
    });

  template
    .command('ls')
    .alias('list')
    .description('list templates')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const all = await (await templates()).list();
      await print(all, () => table(['NAME', 'SOURCE', 'SIZE', 'SEALED', 'CLONES', 'CREATED'], all.map((x) => [x.name, x.source, formatSize(x.virtualSize), x.sealMethod, String(x.clones.length), x.createdAt])));
    });

  template
    .command('info')
    .description('show one template; --verify checks that its disk is unchanged (sha256)')
    .argument('<name>')
    .option('--verify', 'recompute the disk checksum')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string; verify?: boolean }) => {
      const print = printer(o.format);
      const t = await templates();
      const x = await t.get({ name: validateName('NAME', name) });
      const verified = o.verify ? await t.verify({ name }) : undefined;
      const view = { ...x, ...(verified === undefined ? {} : { verified: { sha256: verified.sha256, unchanged: verified.unchanged } }) };
      await print(view, () =>
        keyValues([
          ['Name', x.name],
          ['Source', x.source],
          ['Disk', `${x.disk} (${x.format}, ${formatSize(x.virtualSize)}, read-only)`],
          ['SHA256', x.sha256],
          ['Verified', verified === undefined ? undefined : verified.unchanged ? 'unchanged' : `CHANGED: now ${verified.sha256}`],
          ['Image', x.image === undefined ? undefined : `${x.image.name} (sha256 ${x.image.sha256.slice(0, 16)}…)`],
          ['Defaults', `${x.defaults.cpus} CPU, ${formatSize(x.defaults.memoryMiB * 1024 * 1024)}, network ${x.defaults.networks.join(', ') || 'none'}${x.defaults.user ? `, user ${x.defaults.user}` : ''}`],
          ['Sealed', x.sealReport[0] ?? x.sealMethod],
          ['Warm state', x.warm === undefined ? 'none (launches boot)' : `${x.warm.state} (${formatSize(x.warm.stateBytes)}, QEMU ${x.warm.qemuVersion} ${x.warm.machine}, ${x.warm.accel})`],
          ['Clones', x.clones.join(', ') || 'none'],
          ['Created', x.createdAt],
          ]),
      );
      if (verified !== undefined && !verified.unchanged) process.exitCode = 9;
    });

  template
    .command('rm')
    .alias('remove')
    .description('remove a template (refused while instances sit on it)')
    .argument('<name>')
    .action(async (name: string) => {
      await (await templates()).delete({ name: validateName('NAME', name) });
      process.stdout.write(`Removed template ${name}\n`);
    });
}
