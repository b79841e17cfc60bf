import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { selfIdentity } from '../../lib/proc.ts';
import { ARRIVAL_FILE, INCOMING_MARKER, pendingArrivals, removeStaleIncoming } from './stale-incoming.ts';

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

describe('pendingArrivals', () => {
  it('names the directories with an arrival past the incoming marker (the guest may run there), not those still prepared', async () => {
    root = mkdtempSync(join(tmpdir(), 'virtnode-arrivals-'));
    for (const [name, files] of [
      ['arrived', [ARRIVAL_FILE]],
      ['prepared', [ARRIVAL_FILE, INCOMING_MARKER]],
      ['instance', []],
    ] as const) {
      mkdirSync(join(root, name));
      for (const f of files) writeFileSync(join(root, name, f), '{}');
    }
    expect(pendingArrivals(root)).toEqual(['arrived']);
    // A dead preparation goes with its arrival record (the guest never ran there).
    writeFileSync(join(root, 'prepared', INCOMING_MARKER), JSON.stringify({ uuid: 'u', owner: { pid: 999_999_999, start: '1' } }));
    await removeStaleIncoming(root);
    expect(existsSync(join(root, 'prepared'))).toBe(false);
    expect(pendingArrivals(join(root, 'missing'))).toEqual([]);
  });
});
