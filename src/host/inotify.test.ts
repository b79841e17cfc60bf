import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureInotifyInstances } from './inotify.ts';

describe('ensureInotifyInstances', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inotify-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('raises a limit below the floor to the floor, and says from what', () => {
    const path = join(dir, 'low');
    writeFileSync(path, '128\n');
    expect(ensureInotifyInstances(8192, path)).toEqual({ limit: 8192, raisedFrom: 128 });
    expect(readFileSync(path, 'utf8')).toBe('8192\n');
  });

  it('never lowers a higher limit', () => {
    const path = join(dir, 'high');
    writeFileSync(path, '1048576\n');
    expect(ensureInotifyInstances(8192, path)).toEqual({ limit: 1048576 });
    expect(readFileSync(path, 'utf8')).toBe('1048576\n');
  });

  it('reports a limit it cannot read or raise instead of throwing', () => {
    expect(ensureInotifyInstances(8192, join(dir, 'missing')).error).toMatch(/cannot read/);
    // A read-only sysctl (even root may not write it), below any floor.
    const readOnly = '/proc/sys/kernel/pty/nr';
    const r = ensureInotifyInstances(2 ** 30, readOnly);
    expect(r.raisedFrom).toBeUndefined();
    expect(r.limit).toBe(Number(readFileSync(readOnly, 'utf8')));
    expect(r.error).toMatch(/^cannot raise \/proc\/sys\/kernel\/pty\/nr from \d+ to 1073741824/);
  });
});
