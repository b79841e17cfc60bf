import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rotateConsoleLog } from './console-log.ts';

describe('console log rotation', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('moves a log over the cap to console.log.1 and empties it; a writer in append mode (as QEMU) goes on from the start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-console-log-'));
    dirs.push(dir);
    const log = join(dir, 'console.log');
    const qemu = openSync(log, 'a'); // QEMU's chardev logfile with logappend=on
    try {
      writeSync(qemu, 'a'.repeat(100));
      expect(rotateConsoleLog(log, 200)).toBe(false);
      expect(statSync(log).size).toBe(100);
      writeSync(qemu, 'b'.repeat(150));
      expect(rotateConsoleLog(log, 200)).toBe(true);
      expect(readFileSync(`${log}.1`, 'utf8')).toBe(`${'a'.repeat(100)}${'b'.repeat(150)}`);
      expect(statSync(log).size).toBe(0);
      writeSync(qemu, 'after');
      expect(readFileSync(log, 'utf8')).toBe('after'); // not 250 zero bytes and then "after"
    } finally {
      closeSync(qemu);
    }
    expect(rotateConsoleLog(join(dir, 'absent.log'), 1)).toBe(false);
  });
});
