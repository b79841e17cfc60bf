import type { Command } from 'commander';
import { loadInstanceService as service } from '../load-service.ts';

export function registerConsoleCommands(program: Command): void {
  program
    .command('console')
    .description("attach to a VM's serial console (Ctrl-] detaches)")
    .argument('<name>')
    .action(async (name: string) => {
      const { attachConsole } = await import('../console.ts');
      const s = await service();
      await attachConsole(s, name);
    });

  program
    .command('logs')
    .description("print a VM's serial console log (kept across restarts)")
    .argument('<name>')
    .option('-f, --follow', 'keep printing new output')
    .action(async (name: string, o: { follow?: boolean }) => {
      const { printConsoleLog } = await import('../console.ts');
      const s = await service();
      await printConsoleLog(s, name, { follow: o.follow === true });
    });
}
