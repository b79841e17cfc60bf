import type { Command } from 'commander';
import { formatSize } from '../../lib/units.ts';
import { keyValues, parseFormat, structured, table } from '../output.ts';
import { loadInstanceService as service } from '../load-service.ts';

async function templates() {
  const { TemplateService } = await import('../../templates/service.ts');
  return new TemplateService(await service());
}

import { templateView } from '../../api/views.ts';

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
      if (o.format !== undefined) parseFormat(o.format);
      const [{ cloneInstance }, { progressReporter, transferTracker }] = await Promise.all([import('../../clone/clone.ts'), import('../../images/pull/progress.ts')]);
      const s = await service();
      const tracker = transferTracker(progressReporter(process.stderr, 'copying'));
      const result = await cloneInstance(s, { source: src, name, linked: o.linked === true }, { onProgress: (done, total) => tracker.update(done, total) });
      if (result.mode === 'full') tracker.finish();
      let instance = result.instance;
      if (o.start) instance = await s.start(name);
      if (o.format !== undefined && o.format !== 'table') {
        const { instanceView } = await import('./instances.ts');
        const view = { ...instanceView(instance), clone: { source: src, from: result.from, mode: result.mode, ...(result.base === undefined ? {} : { base: result.base }), seal: result.seal ?? null } };
        process.stdout.write(await structured(view, parseFormat(o.format) as 'json' | 'yaml'));
        return;
      }
      const how = result.mode === 'linked' ? `linked clone (overlay on ${result.base ?? `template ${src}`})` : 'full copy';
      process.stdout.write(
        [
          `Cloned ${result.from} ${src} into ${instance.name}${o.start ? ', running' : ''}: ${how}`,
          `  uuid:        ${instance.uuid} (SMBIOS ${instance.smbiosUuid})`,
          `  mac:         ${instance.nics.map((n) => n.mac).join(', ') || '-'}`,
          `  instance-id: ${instance.spec.instanceId}`,
          `  sealed:      ${result.seal === undefined ? `no need (template ${src} is sealed)` : result.seal.summary}`,
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
    .action(async (instance: string, name: string | undefined) => {
      const t = await templates();
      const started = Date.now();
      const result = await t.create(instance, name, {
        onPhase: (phase, detail) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${phase.padEnd(6)} ${detail}\n`),
      });
      process.stdout.write(`Template ${result.template.name} made of ${instance}; sealed ${result.seal.summary}\n`);
    });

  template
    .command('ls')
    .alias('list')
    .description('list templates')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const format = parseFormat(o.format);
      const t = await templates();
      const all = (await t.list()).map((x) => ({ t: x, clones: t.dependents(x) }));
      if (format !== 'table') {
        process.stdout.write(await structured(all.map((x) => templateView(x.t, x.clones)), format));
        return;
      }
      const rows = all.map(({ t: x, clones }) => [x.name, x.source, formatSize(x.virtualSize), x.sealMethod, String(clones.length), x.createdAt]);
      process.stdout.write(table(['NAME', 'SOURCE', 'SIZE', 'SEALED', 'CLONES', 'CREATED'], rows));
    });

  template
    .command('info')
    .description('show one template; --verify checks that its disk is unchanged (sha256)')
    .argument('<name>')
    .option('--verify', 'recompute the disk checksum')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string; verify?: boolean }) => {
      const format = parseFormat(o.format);
      const t = await templates();
      const x = await t.get(name);
      const verified = o.verify ? await t.verify(name) : undefined;
      const clones = t.dependents(x);
      if (format !== 'table') {
        const view = { ...templateView(x, clones), ...(verified === undefined ? {} : { verified: { sha256: verified.sha256, unchanged: verified.unchanged } }) };
        process.stdout.write(await structured(view, format));
      } else {
        process.stdout.write(
          keyValues([
            ['Name', x.name],
            ['Source', x.source],
            ['Disk', `${x.diskPath} (${x.format}, ${formatSize(x.virtualSize)}, read-only)`],
            ['SHA256', x.sha256],
            ['Verified', verified === undefined ? undefined : verified.unchanged ? 'unchanged' : `CHANGED: now ${verified.sha256}`],
            ['Image', x.image === undefined ? undefined : `${x.image.name} (sha256 ${x.image.sha256.slice(0, 16)}…)`],
            ['Defaults', `${x.defaults.cpus} CPU, ${formatSize(x.defaults.memoryMiB * 1024 * 1024)}, network ${x.defaults.networks.join(', ') || 'none'}${x.defaults.user ? `, user ${x.defaults.user}` : ''}`],
            ['Sealed', x.sealReport[0] ?? x.sealMethod],
            ['Clones', clones.join(', ') || 'none'],
            ['Created', x.createdAt],
          ]),
        );
      }
      if (verified !== undefined && !verified.unchanged) process.exitCode = 9;
    });

  template
    .command('rm')
    .alias('remove')
    .description('remove a template (refused while instances sit on it)')
    .argument('<name>')
    .action(async (name: string) => {
      await (await templates()).remove(name);
      process.stdout.write(`Removed template ${name}\n`);
    });
}
