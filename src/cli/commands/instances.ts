import type { Command } from 'commander';
import { shownNicAddress, sshPort } from '../../api/instance-access.ts';
import type { InstanceView } from '../../api/schemas.ts';
import { invalid } from '../../lib/errors.ts';
import { formatSize, MIB } from '../../lib/units.ts';
import { parseDuration } from '../duration.ts';
import { keyValues, printer, table } from '../output.ts';
import { api } from '../api.ts';
import { bandwidthInput, cpusInput, downtimeLimitInput, postcopyInput, restartPolicyInput } from '../inputs.ts';
import { addTuningOptions, tuningInput, tuningSummary } from '../tuning-flags.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The API's whole seconds for a --timeout (a started second counts). */
function timeoutInput(text: string | undefined): { timeoutSeconds?: number } {
  return text === undefined ? {} : { timeoutSeconds: Math.ceil(parseDuration('--timeout', text) / 1000) };
}

/** Leaves out the options not given (the API's optional fields are absent, never undefined). */
function definedOnly<T extends Record<string, unknown>>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function nicLine(n: InstanceView['nics'][number]): string {
  const parts = [`${n.mac} (${n.network})`];
  if (n.address !== undefined) parts.push(`${n.staticAddress ? 'static' : 'reserved'} ${n.address}`);
  if (n.lease !== undefined) parts.push(`lease ${n.lease}`);
  if (n.guestAddresses !== undefined && n.guestAddresses.length > 0) parts.push(`guest ${n.guestAddresses.join(' ')}`);
  return parts.join(', ');
}

function instanceText(i: InstanceView): string {
  const port = sshPort(i);
  return keyValues([
    ['Name', i.name],
    ...(i.host === undefined ? [] : [['Host', i.host] as [string, string]]),
    ['Type', i.type],
    ['State', i.reason === undefined ? i.state : `${i.state} (${i.reason})`],
    ['UUID', i.uuid],
    ['SMBIOS UUID', i.smbiosUuid],
    ['CPUs', i.cpus],
    ['Memory', formatSize(i.memoryMiB * MIB)],
    ['Accelerator', i.accel],
    ['Tuning', tuningSummary(i.tuning)],
    ['Root', i.container === undefined ? undefined : i.container.privileged ? 'privileged (root on the host)' : 'unprivileged (a uid range on the host)'],
    ['Disk limit', i.container === undefined ? undefined : i.container.diskSizeBytes === undefined ? 'none' : formatSize(i.container.diskSizeBytes)],
    ...i.disks.map((d): [string, string] => [`Disk ${d.id}`, `${d.path} (${d.format})`]),
    ...i.nics.map((n): [string, string] => [`NIC ${n.index}`, nicLine(n)]),
    ...(i.portForwards ?? []).map((p, k): [string, string] => [k === 0 ? 'Ports' : '', `${p.hostAddress}:${p.hostPort} -> ${p.guestPort}/${p.protocol}`]),
    ['Image', i.image === undefined ? undefined : `${i.image.name} (sha256 ${i.image.sha256.slice(0, 16)}…)`],
    ['Instance-id', i.instanceId],
    ['SSH', i.ssh?.address === undefined ? undefined : `${i.ssh.user}@${i.ssh.address.split(':')[0]} port ${port} (virtnode shell ${i.name})`],
    ...(i.ssh?.hostKeyFingerprints ?? []).map((f, n): [string, string] => [n === 0 ? 'Host keys' : '', f]),
    ['Cloud-init', i.readiness === undefined ? undefined : `${i.readiness.detail} (at ${i.readiness.at})`],
    ['Kernel', i.boot?.kernel],
    ['Cmdline', i.boot?.cmdline],
    ['Autostart', i.autostart === true ? 'yes' : undefined],
    ['Restart', i.restartPolicy === undefined || i.restartPolicy === 'no' ? undefined : i.restartPolicy],
    [i.type === 'container' ? 'Init pid' : 'QEMU pid', i.pid],
    ['Created', i.createdAt],
  ]);
}

export function registerInstanceCommands(program: Command): void {
  const create = program
    .command('create')
    .description('define a new VM (it starts with `virtnode start`, or now with --start)')
    .argument('<name>', 'instance name: a DNS label (lowercase letters, digits, hyphens)')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .option('--memory <size>', 'memory, e.g. 512M, 2G', '512M')
    .option('--disk <path>', 'use an existing qcow2 or raw disk image (a path, or nfs://SERVER/EXPORT/FILE)')
    .option('--disk-size <size>', 'create a new empty qcow2 disk of this size, e.g. 10G')
    .option('--kernel <file>', 'boot this kernel directly')
    .option('--initrd <file>', 'initramfs for --kernel')
    .option('--cmdline <text>', 'kernel command line for --kernel')
    .option('--accel <accel>', 'auto, kvm or tcg', 'auto')
    .option('--type <type>', 'vm (containers are made from an image: virtnode launch IMAGE --container)')
    .option('--network <name>', 'user (NAT through QEMU, no root needed, the default), none, or a managed network; repeatable, one NIC each', collect)
    .option('--ip <address>', 'static address on the i-th managed --network (repeatable; auto = DHCP)', collect)
    .option('--start', 'start it right away')
    .option('--autostart', 'the daemon starts it when it starts (see `virtnode set`)')
    .option('--restart <policy>', 'what the daemon does when it ends: no, on-failure or always')
    .option('--format <format>', 'table, json or yaml');
  addTuningOptions(create)
    .action(async (name: string, o: Record<string, string | string[] | boolean | undefined>) => {
      const print = o['format'] === undefined ? undefined : printer(o['format'] as string); // bad input is refused before anything is made
      const { resolve } = await import('node:path');
      const text = (key: string) => (typeof o[key] === 'string' ? (o[key] as string) : undefined);
      // Paths mean this shell's directory, also when the daemon does the work.
      const path = (key: string) => (text(key) === undefined ? undefined : resolve(text(key)!));
      const fields = {
        type: text('type') as 'vm' | 'container' | undefined,
        cpus: cpusInput(text('cpus')),
        memory: text('memory'),
        disk: text('disk')?.startsWith('nfs://') ? text('disk') : path('disk'), // an NFS URL is QEMU's to open
        diskSize: text('diskSize'),
        kernel: path('kernel'),
        initrd: path('initrd'),
        cmdline: text('cmdline'),
        accel: text('accel') as 'auto' | 'kvm' | 'tcg' | undefined,
        network: o['network'] as string[] | undefined,
        ip: o['ip'] as string[] | undefined,
        start: o['start'] === true ? true : undefined,
        autostart: o['autostart'] === true ? true : undefined,
        restartPolicy: restartPolicyInput(text('restart')),
        tuning: tuningInput(o),
      };
      const instance = await (await api()).instances.create({ name, ...definedOnly(fields) });
      if (print !== undefined) await print(instance, () => instanceText(instance));
      else process.stdout.write(`Created instance ${instance.name}${o['start'] ? ', running' : ''} (uuid ${instance.uuid})\n`);
    });

  program
    .command('start')
    .description('start a VM')
    .argument('<name>')
    .action(async (name: string) => {
      const i = await (await api()).instances.start({ name });
      process.stdout.write(`Started ${i.name} (pid ${i.pid}${i.reason ? `, ${i.reason}` : ''})\n`);
    });

  program
    .command('stop')
    .description('shut a VM down through the ACPI power button, forcing it off after --timeout')
    .argument('<name>')
    .option('--timeout <duration>', 'how long the guest gets to power off (seconds, or 90s, 2m)', '60')
    .option('-f, --force', 'power off at once, like pulling the plug')
    .action(async (name: string, o: { timeout?: string; force?: boolean }) => {
      const timeout = timeoutInput(o.timeout); // bad input is refused before anything runs
      const result = await (await api()).instances.stop({ name, force: o.force === true, ...timeout });
      process.stdout.write(`Stopped ${name}: ${result.instance.reason}\n`);
    });

  program
    .command('restart')
    .description('stop a VM (ACPI, then forced after --timeout) and start it again')
    .argument('<name>')
    .option('--timeout <duration>', 'how long the guest gets to power off', '60')
    .option('-f, --force', 'power off at once instead of asking the guest')
    .action(async (name: string, o: { timeout?: string; force?: boolean }) => {
      const timeout = timeoutInput(o.timeout); // bad input is refused before anything runs
      const { instance: i } = await (await api()).instances.restart({ name, force: o.force === true, ...timeout });
      process.stdout.write(`Restarted ${i.name} (pid ${i.pid})\n`);
    });

  program
    .command('move')
    .description('in a cluster: move a VM to another host: live when it runs, offline (its disks copied) when stopped (user-mode NICs only)')
    .argument('<name>')
    .requiredOption('--to <host>', 'the cluster host to move it to')
    .option('--offline', 'only an offline move: refused when the VM runs (stop it first)')
    .option('--timeout <duration>', 'give the move up (and undo it) after this long (not once post-copy has started)', '10m')
    .option('--postcopy <mode>', 'auto: switch to post-copy when pre-copy cannot converge; never (the default): pre-copy only')
    .option('--bandwidth <rate>', 'cap the memory migration at this rate per second, e.g. 50M (MiB/s), 1G')
    .option('--downtime-limit <ms>', 'the longest the guest may stay stopped for the last round of memory, 1 to 60000 ms (default 30)')
    .action(async (name: string, o: { to: string; timeout?: string; offline?: boolean; postcopy?: string; bandwidth?: string; downtimeLimit?: string }) => {
      // Bad input is refused before anything runs.
      const options = {
        ...timeoutInput(o.timeout),
        ...definedOnly({ postcopy: postcopyInput(o.postcopy), bandwidthMiBs: bandwidthInput(o.bandwidth), downtimeLimitMs: downtimeLimitInput(o.downtimeLimit) }),
        ...(o.offline === true ? { offline: true } : {}),
      };
      const { interruptibly } = await import('../interrupt.ts');
      const client = await api();
      await interruptibly(async (signal) => {
        const r = await client.instances.move({ name, host: o.to, ...options }, {
          signal,
          onPhase: (phase, detail, ms) => process.stderr.write(`[${(ms / 1000).toFixed(1).padStart(6)} s] ${phase.padEnd(10)} ${detail}\n`),
        });
        const downtime = r.offline ? `, offline (${Math.round(r.diskBytes / 1048576)} MiB of disks copied)` : r.downtimeMs === null ? ', downtime unknown' : `, downtime ${r.downtimeMs} ms`;
        process.stdout.write(`Moved ${r.instance.name} from ${r.from} to ${r.to} in ${(r.totalMs / 1000).toFixed(1)} s${downtime}${r.postcopy ? ' (switched to post-copy)' : ''}\n`);
        const s = r.switchover;
        if (s !== undefined) {
          const at = (what: string, ms: number | undefined) => (ms === undefined ? [] : [`${what} ${ms} ms`]);
          const steps = [...at('paused', s.pausedMs), ...at('disks done', s.continuedMs), ...at('source done', s.sourceCompletedMs), ...at('target asked', s.resumeAskedMs), ...at('memory loaded', s.arrivedMs), `running ${s.runningMs} ms`];
          process.stdout.write(`  switch-over after the source stopped: ${steps.join(', ')}\n`);
        }
      });
    });

  program
    .command('pause')
    .description('freeze a running VM (its CPUs stop; memory stays)')
    .argument('<name>')
    .action(async (name: string) => {
      await (await api()).instances.pause({ name });
      process.stdout.write(`Paused ${name}\n`);
    });

  program
    .command('resume')
    .description('continue a paused VM')
    .argument('<name>')
    .action(async (name: string) => {
      await (await api()).instances.resume({ name });
      process.stdout.write(`Resumed ${name}\n`);
    });

  program
    .command('delete')
    .description('delete a VM and the disks virtnode made for it')
    .argument('<name>')
    .option('-f, --force', 'kill it first if it is running')
    .action(async (name: string, o: { force?: boolean }) => {
      await (await api()).instances.delete({ name, force: o.force === true });
      process.stdout.write(`Deleted ${name}\n`);
    });

  program
    .command('list')
    .alias('ls')
    .description('list VMs and their states')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const all = await (await api()).instances.list();
      await print(all, () => {
        // In a cluster every instance says which host runs it; a standalone host's table is as it always was.
        const hosts = all.some((i) => i.host !== undefined);
        const rows = all.map((i) => [
          i.name,
          ...(hosts ? [i.host ?? '-'] : []),
          i.type,
          i.state,
          String(i.cpus),
          formatSize(i.memoryMiB * MIB),
          i.nics.map((n) => n.mac).join(',') || '-',
          i.nics.map(shownNicAddress).filter((a) => a !== undefined).join(',') || '-',
          i.reason ?? '',
        ]);
        return table(['NAME', ...(hosts ? ['HOST'] : []), 'TYPE', 'STATE', 'CPUS', 'MEMORY', 'MAC', 'ADDRESSES', 'REASON'], rows);
      });
    });

  program
    .command('info')
    .description('show one VM in detail')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const instance = await (await api()).instances.get({ name });
      await print(instance, () => instanceText(instance));
    });

  program
    .command('set')
    .description('change an instance: cpus=N memory=SIZE (vCPUs at the next boot; less memory at once through the balloon), disk=SIZE (a stopped container launched with --disk-size: grown now), autostart=true|false restart=no|on-failure|always')
    .argument('<name>')
    .argument('<settings...>', 'KEY=VALUE pairs: cpus=N, memory=SIZE, disk=SIZE, autostart=true|false, restart=no|on-failure|always')
    .action(async (name: string, settings: string[]) => {
      const policy: { autostart?: boolean; restartPolicy?: 'no' | 'on-failure' | 'always' } = {};
      const resources: { cpus?: number; memory?: string; disk?: string } = {};
      for (const setting of settings) {
        const [key, value, ...rest] = setting.split('=');
        if (key === 'autostart' && (value === 'true' || value === 'false') && rest.length === 0) policy.autostart = value === 'true';
        else if (key === 'restart' && (value === 'no' || value === 'on-failure' || value === 'always') && rest.length === 0) policy.restartPolicy = value;
        else if (key === 'cpus' && value !== undefined && /^\d+$/.test(value) && rest.length === 0) resources.cpus = Number(value);
        else if (key === 'memory' && value !== undefined && value !== '' && rest.length === 0) resources.memory = value;
        else if (key === 'disk' && value !== undefined && value !== '' && rest.length === 0) resources.disk = value;
        else if (key === 'autostart' || key === 'restart' || key === 'cpus') {
          const hint = { autostart: 'use autostart=true or autostart=false', restart: 'use restart=no, restart=on-failure or restart=always', cpus: 'use cpus=N, a whole number' }[key];
          throw invalid(key, `"${value}" is not valid`, hint);
        } else throw invalid('<settings>', `"${setting}" is not a setting virtnode knows`, 'use cpus=N, memory=SIZE, disk=SIZE, autostart=true|false and restart=no|on-failure|always');
      }
      const client = await api();
      if (Object.keys(resources).length > 0) {
        const r = await client.instances.resources({ name, ...resources });
        const when = (what: string, effect: string | undefined) => (effect === undefined ? `${what} unchanged` : `${what} ${effect === 'live' ? 'changed now (and from the next boot)' : 'from the next boot'}`);
        process.stdout.write(`${r.instance.name}: ${r.instance.cpus} vCPUs, ${r.instance.memoryMiB} MiB (${when('vCPUs', r.effect.cpus)}; ${when('memory', r.effect.memory)})\n`);
        if (r.effect.disk !== undefined) process.stdout.write(`${r.instance.name}: disk grown to ${resources.disk}\n`);
      }
      if (Object.keys(policy).length > 0) {
        const i = await client.instances.setPolicy({ name, ...policy });
        process.stdout.write(`${i.name}: autostart ${i.autostart ? 'on' : 'off'}, restart ${i.restartPolicy ?? 'no'}\n`);
      }
    });

  program
    .command('reconcile')
    .description('repair what an interrupted virtnode left behind (also done automatically)')
    .action(async () => {
      const [{ reconcile }, { instances }] = await Promise.all([import('../../app/reconcile.ts'), import('../context.ts')]);
      const report = await reconcile(instances().core, { deep: true });
      process.stdout.write(report.repaired.length === 0 ? 'Nothing to repair\n' : `${report.repaired.join('\n')}\n`);
    });
}
