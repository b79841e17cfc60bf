import { readdir, readFile, readlink } from 'node:fs/promises';
import { run } from '../../exec/run.ts';

const UMOUNT_TIMEOUT_MS = 30_000;

/** Mount points at or below `dir` (from /proc/self/mountinfo), deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescapeMountPath)
    .filter((p) => p === dir || p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Unmounts everything at or below `dir` (debootstrap leaves /proc and /sys mounted in the target when it is
 * killed). Falls back to a lazy unmount. Throws if something is still mounted afterwards, so that a caller never
 * deletes a tree holding a bind mount of the host's /dev or /sys.
 */
export async function unmountAllUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 3; pass++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) return;
    for (const point of points) {
      try {
        await run(['umount', point], { timeoutMs: UMOUNT_TIMEOUT_MS });
      } catch {
        await run(['umount', '-l', point], { timeoutMs: UMOUNT_TIMEOUT_MS }).catch(() => {});
      }
    }
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted under ${dir}: ${left.join(', ')}`);
}

const KILL_SETTLE_MS = 200;

/**
 * Kills every process that works in `dir`: its root directory or working directory is at or below it, or its
 * command line names a path inside it. Killing debootstrap (a shell script) on abort leaves its wget downloads,
 * dpkg and maintainer scripts running, writing into the tree and holding mounts. Never this process itself.
 */
export async function killProcessesRootedUnder(dir: string): Promise<number> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const inside = (p: string | undefined): boolean => p !== undefined && (p === dir || p.startsWith(prefix));
  let killed = 0;
  for (let pass = 0; pass < 5; pass++) {
    let found = 0;
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      const root = await readlink(`/proc/${entry}/root`).catch(() => undefined);
      const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => undefined);
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (!inside(root) && !inside(cwd) && !cmdline.split('\0').some((arg) => arg.includes(prefix) || arg === dir)) continue;
      try {
        process.kill(Number(entry), 'SIGKILL');
        found++;
      } catch {
        // already gone
      }
    }
    if (found === 0) break;
    killed += found;
    await new Promise((r) => setTimeout(r, KILL_SETTLE_MS));
  }
  return killed;
}
