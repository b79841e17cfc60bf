import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { selfIdentity } from '../../lib/proc.ts';
import { INCOMING_MARKER, removeStaleIncoming } from './stale-incoming.ts';

let root: string | undefined;
afterEach(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

describe('removeStaleIncoming', () => {
  it('removes the moves whose preparing process is gone, keeps those in progress and plain instances', async () => {
    root = mkdtempSync(join(tmpdir(), 'virtnode-incoming-'));
    const make = (name: string, marker?: unknown) => {
      mkdirSync(join(root!, name));
      writeFileSync(join(root!, name, 'disk0.qcow2'), 'x');
      if (marker !== undefined) writeFileSync(join(root!, name, INCOMING_MARKER), typeof marker === 'string' ? marker : JSON.stringify(marker));
    };
    make('stale', { uuid: 'u1', owner: { pid: 999_999_999, start: '1' }, qemu: { pid: 999_999_998, start: '1' } });
    make('cut-short', '{"uuid":');
    make('in-progress', { uuid: 'u2', owner: selfIdentity() });
    make('instance');
    const removed = await removeStaleIncoming(root);
    expect(removed.sort()).toEqual([join(root, 'cut-short'), join(root, 'stale')]);
    expect(existsSync(join(root, 'in-progress'))).toBe(true);
    expect(existsSync(join(root, 'instance'))).toBe(true);
    expect(await removeStaleIncoming(join(root, 'missing'))).toEqual([]);
  });
});
