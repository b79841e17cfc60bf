/**
 * A container launch killed (SIGKILL through VIRTNODE_FAILPOINT) at each of its steps: the next command repairs
 * it like a VM's (a half-made container undone, a started one adopted, never lost or left running unrecorded),
 * and delete then leaves no LXC monitor, veth, cgroup or directory.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { containerFootprint } from '../helpers/container-footprint.ts';
import { debianImage } from '../helpers/debian-image.ts';

const POINTS = ['create.after-mkdir', 'launch.after-seed', 'start.after-mark', 'start.after-spawn', 'start.after-cont'];

/** LXC monitors of this state directory's containers (the container's init, before it execs, has the same command line). */
function monitorsOf(lxcpath: string): string[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => read(`/proc/${e}/cmdline`).startsWith(`[lxc monitor] ${lxcpath} `))
    .map((e) => `${read(`/proc/${e}/cmdline`)} comm=${read(`/proc/${e}/comm`).trim()} ppid=${/^PPid:\s+(\d+)/m.exec(read(`/proc/${e}/status`))?.[1]}`);
}


describe('a container launch crashed at each step', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxc-crash-');
  const lxcpath = join(home, 'instances');
  let linksBefore: string[];
  // This state directory's links only: other test files make and remove links of their own at the same time.
  const links = () => containerFootprint(home, POINTS).links;

  beforeAll(async () => {
    const r = await virtnode(home, ['image', 'import', debianImage(), '--name', 'debian-12'], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    // The default network exists before the first crash, so the links compared are the containers' only.
    const n = await virtnode(home, ['network', 'create', 'default', '--subnet', '10.93.0.0/24']);
    expect(n.code, n.stderr).toBe(0);
    linksBefore = links();
  }, 400_000);

  afterAll(async () => {
    for (const point of POINTS) await virtnode(home, ['delete', '--force', `c-${point.replace(/\./g, '-')}`]).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    cleanup();
  });

  for (const point of POINTS) {
    it(`is repaired after a crash at ${point}`, async () => {
      const name = `c-${point.replace(/\./g, '-')}`;
      const crashed = await virtnode(home, ['launch', 'debian-12', '--container', '--name', name, '--no-wait'], { env: { VIRTNODE_FAILPOINT: point }, timeoutMs: 300_000 });
      expect(crashed.signal ?? crashed.code, crashed.stderr).not.toBe(0);
      const list = await virtnode(home, ['list', '--format', 'json']);
      expect(list.code, list.stderr).toBe(0);
      const found = (JSON.parse(list.stdout) as Array<{ name: string; state: string; pid?: number }>).find((i) => i.name === name);
      const monitors = monitorsOf(lxcpath);
      if (found === undefined) {
        // Undone: nothing of it is left.
        expect(existsSync(join(lxcpath, name))).toBe(false);
        expect(monitors).toEqual([]);
      } else if (found.state === 'running') {
        // Adopted: the running container is the recorded one.
        expect(monitors.length, monitors.join('\n')).toBe(1);
        expect(monitors[0]).toContain(`[lxc monitor] ${lxcpath} ${name}\0`);
        const exec = await virtnode(home, ['exec', name, '--', 'sh', '-c', 'cloud-init status --wait >/dev/null; hostname'], { timeoutMs: 300_000 });
        expect(exec.stdout).toBe(`${name}\n`);
      } else {
        // Rolled back to a state it can start from, and nothing runs.
        expect(['defined', 'stopped']).toContain(found.state);
        expect(monitors).toEqual([]);
      }
      if (found !== undefined) {
        const deleted = await virtnode(home, ['delete', '--force', name], { timeoutMs: 120_000 });
        expect(deleted.code, deleted.stderr).toBe(0);
      }
      expect(monitorsOf(lxcpath)).toEqual([]);
      expect(existsSync(join(lxcpath, name))).toBe(false);
      expect(links()).toEqual(linksBefore);
    });
  }
});
