import type { Command } from 'commander';
import { interruptibly } from '../interrupt.ts';
import { addTuningOptions, tuningInput } from '../tuning-flags.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerLaunchCommands(program: Command): void {
  const launch = program
    .command('launch')
    .description('create and boot a VM (or with --container a system container) from an image, with its own identity through cloud-init, and wait until it is ready')
    .argument('<image>', 'an image name (see `virtnode image ls`)')
    .option('--name <name>', 'instance name (default: the image name and a random suffix)')
    .option('--container', 'a system container (LXC) instead of a VM: same image, same identity, starts in seconds')
    .option('--type <type>', 'vm (default) or container')
    .option('--privileged', 'containers: root in the container is root on the host (default: an unprivileged uid range)')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .option('--memory <size>', 'memory, e.g. 1G', '1G')
    .option('--disk-size <size>', 'grow the disk to this size, e.g. 10G (default: the image size); containers: the most it may write (an ext4 image, at least 128M)')
    .option('--pool <pool>', 'make the disk in this pool (e.g. an nfs or shared-dir pool) instead of the instance directory')
    .option('--ssh-key <file>', 'an OpenSSH public key to authorize (repeatable)', collect)
    .option('--user <name>', 'the default user', 'virtnode')
    .option('--user-data <file>', 'cloud-init user-data (#cloud-config, or a script); checked before anything is made')
    .option('--network-config <file>', 'cloud-init network-config (version 1 or 2)')
    .option('--network <name>', 'a managed network for one more NIC (repeatable); NIC 0 stays user-mode for SSH', collect)
    .option('--ip <address>', 'static address on the i-th --network (repeatable; auto = DHCP)', collect)
    .option('--timezone <tz>', 'e.g. Europe/Paris')
    .option('--password-hash <hash>', 'crypt(3) hash for the default user (openssl passwd -6)')
    .option('--seed <format>', 'identity seed: NoCloud iso (default), vfat, or http (served to this guest only, no seed disk); or configdrive (OpenStack config-2)', 'iso')
    .option('--accel <accel>', 'auto, kvm or tcg', 'auto')
    .option('--timeout <seconds>', 'how long to follow readiness before saying it is still provisioning', '900')
    .option('--warm', "load the template's warm state instead of booting (the default when it has one and the launch fits it)")
    .option('--cold', 'boot, even when the template has a warm state')
    .option('--target <host>', 'in a cluster: the host to run it on (default: the scheduler chooses one with room)')
    .option('--group <name>', 'in a cluster: an anti-affinity group; its members go to different hosts while possible')
    .option('--no-wait', 'return as soon as the VM boots');
  addTuningOptions(launch)
    .action(async (image: string, o: Record<string, unknown>) => {
      const [{ api }, { sshPort }, { validateLaunch }] = await Promise.all([import('../api.ts'), import('../../api/instance-access.ts'), import('../../instances/launch-validate.ts')]);
      const out = process.stderr;
      const text = (key: string) => (typeof o[key] === 'string' ? (o[key] as string) : undefined);
      // Files are read here (they are this user's files) and checked, with the same messages whoever does the
      // work; their contents are sent. The name is fixed here, so a default name is known before the work starts.
      const type = o['container'] === true ? 'container' : text('type');
      if (o['container'] === true && text('type') !== undefined && text('type') !== 'container') {
        const { invalid } = await import('../../lib/errors.ts');
        throw invalid('--type', `--container and --type ${text('type')} contradict each other`, 'give one of them');
      }
      if (o['warm'] === true && o['cold'] === true) {
        const { invalid } = await import('../../lib/errors.ts');
        throw invalid('--warm', '--warm and --cold contradict each other', 'give one of them');
      }
      const warm = o['warm'] === true ? true : o['cold'] === true ? false : undefined;
      const valid = validateLaunch({
        image,
        ...(type === undefined ? {} : { type }),
        ...(o['privileged'] === true ? { privileged: true } : {}),
        ...(text('name') === undefined ? {} : { name: text('name')! }),
        cpus: o['cpus'] as string,
        memory: o['memory'] as string,
        ...(text('diskSize') === undefined ? {} : { diskSize: text('diskSize')! }),
        sshKeys: (o['sshKey'] as string[] | undefined) ?? [],
        user: o['user'] as string,
        ...(text('userData') === undefined ? {} : { userData: text('userData')! }),
        ...(text('networkConfig') === undefined ? {} : { networkConfig: text('networkConfig')! }),
        ...(text('timezone') === undefined ? {} : { timezone: text('timezone')! }),
        ...(text('passwordHash') === undefined ? {} : { passwordHash: text('passwordHash')! }),
        seed: o['seed'] as string,
        ...(o['network'] === undefined ? {} : { networks: o['network'] as string[] }),
        ...(o['ip'] === undefined ? {} : { ips: o['ip'] as string[] }),
        accel: o['accel'] as string,
        ...(tuningInput(o) === undefined ? {} : { tuning: tuningInput(o)! }),
      });
      const timeoutS = Number(o['timeout']);
      const client = await api();
      // Ctrl-C cancels the launch (on the host that runs it, also when another host was asked): until its disk and
      // seed are made nothing is left of it; once it is defined, it stays and only the wait for it ends.
      const result = await interruptibly((signal) => client.instances.launch(
        {
          image: valid.image,
          type: valid.type,
          ...(valid.privileged ? { privileged: true } : {}),
          name: valid.name,
          cpus: valid.cpus,
          memory: o['memory'] as string,
          ...(text('diskSize') === undefined ? {} : { diskSize: text('diskSize')! }),
          ...(text('pool') === undefined ? {} : { pool: text('pool')! }),
          sshAuthorizedKeys: valid.sshAuthorizedKeys,
          ...(valid.userData === undefined ? {} : { userData: valid.userData }),
          ...(valid.networkConfig === undefined ? {} : { networkConfig: valid.networkConfig }),
          ...(valid.timezone === undefined ? {} : { timezone: valid.timezone }),
          ...(valid.passwordHash === undefined ? {} : { passwordHash: valid.passwordHash }),
          user: valid.user,
          ...(valid.type === 'container' ? {} : { accel: valid.accel, seed: valid.seedFormat }),
          ...(o['network'] === undefined ? {} : { networks: o['network'] as string[] }),
          ...(o['ip'] === undefined ? {} : { ips: o['ip'] as string[] }),
          ...(valid.tuning === undefined ? {} : { tuning: valid.tuning }),
          ...(warm === undefined ? {} : { warm }),
          ...(text('target') === undefined ? {} : { target: text('target')! }),
          ...(text('group') === undefined ? {} : { group: text('group')! }),
          wait: o['wait'] !== false,
          timeoutSeconds: Number.isFinite(timeoutS) && timeoutS > 0 ? Math.ceil(timeoutS) : 900,
        },
        { signal, onPhase: (phase, detail, ms) => out.write(`[${(ms / 1000).toFixed(1).padStart(6)} s] ${phase.padEnd(10)} ${detail}\n`) },
      ));
      if (valid.privileged) out.write('warning: --privileged: root in this container is root on the host; a process escaping it owns the host\n');
      for (const w of result.warnings) out.write(`warning: user-data: ${w}\n`);
      const i = result.instance;
      const ssh = i.ssh!;
      const port = sshPort(i);
      const sshHost = ssh.address?.split(':')[0] ?? '127.0.0.1';
      const reach =
        i.type === 'container'
          ? [`  address:     ${result.address ?? '(no managed network)'}`, `  exec:        virtnode exec ${i.name} -- CMD`]
          : [`  address:     ${result.address ?? '10.0.2.15 (user-mode network)'}; SSH forwarded at 127.0.0.1:${port}`];
      process.stdout.write(
        [
          `${i.name} is ${result.cloudInit === null ? 'booting' : 'ready'}.`,
          ...(i.host === undefined ? [] : [`  host:        ${i.host}`]),
          ...reach,
          `  shell:       virtnode shell ${i.name}`,
          `  ssh:         ssh -i ${result.ssh.identityFile} -o UserKnownHostsFile=${result.ssh.knownHosts} -p ${port} ${ssh.user}@${sshHost}`,
          ...ssh.hostKeyFingerprints.map((f, n) => `  ${n === 0 ? 'host keys:  ' : '            '} ${f}`),
          ...(result.cloudInit === null ? [] : [`  cloud-init:  ${result.cloudInit.status}${result.cloudInit.datasource ? ` (${result.cloudInit.datasource})` : ''}`]),
          '',
        ].join('\n'),
      );
    });

  program
    .command('shell')
    .description('open an SSH session in a launched VM (host key verified strictly)')
    .argument('<name>')
    .action(async (name: string) => {
      const [{ runInteractive }, { instances }] = await Promise.all([import('../ssh-session.ts'), import('../context.ts')]);
      process.exitCode = await runInteractive(instances(), name, [], { tty: true });
    });

  program
    .command('exec')
    .description('run a command in a launched instance and return its exit code (a VM over SSH, a container through lxc-attach as root)')
    .argument('<name>')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .action(async (name: string, command: string[]) => {
      const [{ runInteractive }, { instances }] = await Promise.all([import('../ssh-session.ts'), import('../context.ts')]);
      process.exitCode = await runInteractive(instances(), name, command, { tty: false });
    });
}
