#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT_CODE, toVirtnodeError } from '../lib/errors.ts';
import { registerApplyCommands } from './commands/apply.ts';
import { registerCloneCommands } from './commands/clone.ts';
import { registerCloudInitCommands } from './commands/cloud-init.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerConsoleCommands } from './commands/console.ts';
import { registerDaemonCommands } from './commands/daemon.ts';
import { registerHostCommands } from './commands/host.ts';
import { registerImageCommands } from './commands/image.ts';
import { registerInstanceCommands } from './commands/instances.ts';
import { registerInteropCommands } from './commands/interop.ts';
import { registerLaunchCommands } from './commands/launch.ts';
import { registerNetworkCommands } from './commands/network.ts';
import { registerNicCommands } from './commands/nic.ts';
import { registerOperationCommands } from './commands/operation.ts';
import { registerPortCommands } from './commands/port.ts';
import { registerSnapshotCommands } from './commands/snapshot.ts';
import { registerStorageCommands } from './commands/storage.ts';

const program = new Command('virtnode')
  .description('Turn this Linux machine into a virtualization host: VMs on QEMU, driven over QMP.')
  .version('0.1.0')
  .option('--debug', 'on errors, print the chain of causes')
  .option('--remote <url>', 'use the virtnode daemon at this https:// URL (token in VIRTNODE_TOKEN, CA in VIRTNODE_CA)')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

// Command modules only declare their commands; each action imports what it needs when it runs.
registerInstanceCommands(program);
registerLaunchCommands(program);
registerConsoleCommands(program);
registerHostCommands(program);
registerCloudInitCommands(program);
registerImageCommands(program);
registerNetworkCommands(program);
registerNicCommands(program);
registerPortCommands(program);
registerStorageCommands(program);
registerSnapshotCommands(program);
registerCloneCommands(program);
registerDaemonCommands(program);
registerOperationCommands(program);
registerInteropCommands(program);
registerApplyCommands(program);
registerClusterCommands(program);
program.hook('preAction', async (_program, action) => {
  const remote = program.opts()['remote'] as string | undefined;
  const { refuseRemote, setRemote } = await import('./backend.ts');
  if (remote !== undefined) setRemote(remote);
  const path = [action.parent === program ? undefined : action.parent?.name(), action.name()].filter(Boolean).join(' ');
  refuseRemote(path);
});

async function printError(e: unknown): Promise<number> {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  // Loaded only here: every module main.ts imports statically is loaded (and run) by every command.
  const { stateDir } = await import('../lib/paths.ts');
  const error = toVirtnodeError(e, { stateDir: stateDir() });
  process.stderr.write(`error: ${error.message}\n`);
  if (error.hint !== undefined) process.stderr.write(`hint: ${error.hint}\n`);
  if (program.opts()['debug']) {
    let cause: unknown = error;
    while (cause instanceof Error) {
      process.stderr.write(`  ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    }
  } else if (error.code === 'INTERNAL') {
    process.stderr.write('(run with --debug for details)\n');
  }
  return EXIT_CODE[error.code];
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.exitCode = await printError(e);
}
