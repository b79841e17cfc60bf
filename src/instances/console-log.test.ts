import { appendFileSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readConsoleLog, rotateConsoleLog, tailOffset } from './console-log.ts';

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

  it('tailOffset: where the last N lines begin, a last line without its newline included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-console-log-'));
    dirs.push(dir);
    const log = join(dir, 'console.log');
    const tail = (text: string, lines: number) => {
      writeFileSync(log, text);
      return text.slice(tailOffset(log, lines));
    };
    expect(tail('a\nb\nc\n', 2)).toBe('b\nc\n');
    expect(tail('a\nb\nc', 2)).toBe('b\nc');
    expect(tail('a\r\nb\r\n', 1)).toBe('b\r\n');
    expect(tail('a\nb\n', 5)).toBe('a\nb\n');
    expect(tail('a\nb\n', 0)).toBe('');
    expect(tail('', 3)).toBe('');
    expect(tail('\n\n\n', 2)).toBe('\n\n');
    // Across read chunks (256 KiB): 300,000 lines of 2 bytes.
    const many = 'x\n'.repeat(300_000);
    expect(tail(many, 150_000)).toBe('x\n'.repeat(150_000));
  });

  it('readConsoleLog gives the tail, waits for a slow reader, and follows what comes next', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-console-log-'));
    dirs.push(dir);
    const log = join(dir, 'console.log');
    writeFileSync(log, Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join(''));
    let got = '';
    await readConsoleLog(log, { follow: false, lines: 3, onData: (c) => void (got += c.toString()) });
    expect(got).toBe('line 997\nline 998\nline 999\n');

    // 1 MiB in 256 KiB reads: never a second read while the reader still waits for room.
    writeFileSync(log, 'y'.repeat(1024 * 1024));
    let waiting = 0;
    let overlapped = false;
    let bytes = 0;
    await readConsoleLog(log, {
      follow: false,
      onData: async (c) => {
        if (waiting > 0) overlapped = true;
        waiting++;
        await new Promise((r) => setTimeout(r, 20));
        bytes += c.length;
        waiting--;
      },
    });
    expect({ bytes, overlapped }).toEqual({ bytes: 1024 * 1024, overlapped: false });

    const stop = new AbortController();
    let followed = '';
    writeFileSync(log, 'old 1\nold 2\n');
    const reading = readConsoleLog(log, { follow: true, lines: 1, signal: stop.signal, onData: (c) => void (followed += c.toString()) });
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(log, 'new\n');
    const deadline = Date.now() + 5_000;
    while (!followed.endsWith('new\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await reading;
    expect(followed).toBe('old 2\nnew\n');
  });
});
