import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backingChain, backingFile } from './backing.ts';

describe('backing files read from qcow2 headers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-backing-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const img = (...args: string[]) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args]);

  it('follows a chain of absolute and relative backing names, as qemu-img wrote them', () => {
    img(join(dir, 'base.qcow2'), '64M');
    img('-F', 'qcow2', '-b', join(dir, 'base.qcow2'), join(dir, 'mid.qcow2'));
    img('-F', 'qcow2', '-b', 'mid.qcow2', join(dir, 'top.qcow2'));
    expect(backingFile(join(dir, 'top.qcow2'))).toBe(join(dir, 'mid.qcow2'));
    expect(backingChain(join(dir, 'top.qcow2'))).toEqual([join(dir, 'mid.qcow2'), join(dir, 'base.qcow2')]);
    expect(backingChain(join(dir, 'base.qcow2'))).toEqual([]);
  });

  it('has no answer for raw files, other files and missing ones', () => {
    writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(4096));
    expect(backingFile(join(dir, 'disk.raw'))).toBeUndefined();
    writeFileSync(join(dir, 'short'), 'QFI');
    expect(backingFile(join(dir, 'short'))).toBeUndefined();
    expect(backingFile(join(dir, 'missing.qcow2'))).toBeUndefined();
  });
});
