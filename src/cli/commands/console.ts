import type { Command } from 'commander';

export function registerConsoleCommands(program: Command): void {
  program
    .command('console')
    .description("attach to a VM's serial console (Ctrl-] detaches); through the daemon when one runs, shared with the web UI")
    .argument('<name>')
    .action(async (name: string) => {
      const { attachConsole, consoleApi } = await import('../console.ts');
      await attachConsole(await consoleApi(), name);
    });

  program
    .command('logs')
    .description("print a VM's serial console log (kept across restarts)")
    .argument('<name>')
    .option('-f, --follow', 'keep printing new output')
    .action(async (name: string, o: { follow?: boolean }) => {
      const { consoleApi, printConsoleLog } = await import('../console.ts');
      await printConsoleLog(await consoleApi(), name, { follow: o.follow === true });
    });
}
