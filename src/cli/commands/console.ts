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
    .description("print the last lines of an instance's serial console log (kept across restarts)")
    .argument('<name>')
    .option('-f, --follow', 'keep printing new output')
    .option('-n, --lines <n>', 'how many of the last lines to print (default 200)')
    .option('--all', 'print the whole log')
    .action(async (name: string, o: { follow?: boolean; lines?: string; all?: boolean }) => {
      const [{ consoleApi, printConsoleLog }, { logTailInput }, { DEFAULT_LOG_TAIL_LINES }] = await Promise.all([
        import('../console.ts'),
        import('../inputs.ts'),
        import('../../instances/console-log.ts'),
      ]);
      const tail = logTailInput(o, DEFAULT_LOG_TAIL_LINES);
      await printConsoleLog(await consoleApi(), name, { follow: o.follow === true, ...tail });
    });
}
