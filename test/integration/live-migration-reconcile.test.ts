import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { selfIdentity } from '../../src/lib/proc.ts';
import { INCOMING_MARKER } from '../../src/instances/migrate/stale-incoming.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

describe('reconcile after a crashed target', () => {
  it('removes an incoming move whose preparing process is gone, keeps one in progress', async () => {
    const { home, cleanup } = tempHome('virtnode-incoming-');
    cleanups.push(cleanup);
    const stage = (name: string, owner: unknown) => {
      const dir = join(home, 'instances', name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'disk0.qcow2'), 'staged');
      writeFileSync(join(dir, INCOMING_MARKER), JSON.stringify({ id: name, name, uuid: crypto.randomUUID(), owner }));
      return dir;
    };
    const stale = stage('stale', { pid: 999_999_999, start: '1' });
    const inProgress = stage('moving', selfIdentity());

    const result = await virtnode(home, ['reconcile']);
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(join(inProgress, 'disk0.qcow2')), result.stdout).toBe(true);
  });
});
