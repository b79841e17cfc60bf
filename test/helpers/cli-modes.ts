import { virtnode } from './cli.ts';
import type { RunningDaemon } from './daemon.ts';

export type CliMode = 'daemon' | 'local';

export interface StepResult {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI through the daemon (its socket in the home answers) or in-process (VIRTNODE_NO_DAEMON=1). */
export async function runIn(mode: CliMode, home: string, args: string[], env: Record<string, string> = {}): Promise<StepResult> {
  const r = await virtnode(home, args, { env: { ...env, ...(mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {}) } });
  return { args, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs the same CLI steps in one mode and returns what each printed, with `normalize` applied to stdout and
 * stderr (names that differ between the modes, uuids, dates...). Compare two transcripts with toEqual.
 */
export async function transcript(mode: CliMode, home: string, steps: string[][], normalize: (text: string) => string = (t) => t): Promise<StepResult[]> {
  const out: StepResult[] = [];
  for (const step of steps) {
    const r = await runIn(mode, home, step);
    out.push({ args: step.map(normalize), code: r.code, stdout: normalize(r.stdout), stderr: normalize(r.stderr) });
  }
  return out;
}

/** How many requests the daemon logged for this method and URL (so a test can show the daemon did the work). */
export function requestsTo(daemon: RunningDaemon, method: string, url: string | RegExp): number {
  return daemon.logLines().filter((l) => {
    const req = l['req'] as { url?: string; method?: string } | undefined;
    if (req?.url === undefined || req.method !== method) return false;
    return typeof url === 'string' ? req.url === url : url.test(req.url);
  }).length;
}
