import { expect } from 'vitest';
import { virtnode } from './cli.ts';

/**
 * Assertions on CLI calls against one state directory: `ok` expects exit 0 and returns stdout; `refused` expects
 * an exit code and messages on stderr.
 */
export function cliChecks(home: string) {
  return {
    ok: async (args: string[], env: Record<string, string> = {}): Promise<string> => {
      const r = await virtnode(home, args, { env });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    },
    refused: async (args: string[], code: number, ...messages: string[]): Promise<void> => {
      const r = await virtnode(home, args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
      for (const m of messages) expect(r.stderr).toContain(m);
    },
  };
}
