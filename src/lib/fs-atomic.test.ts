import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './fs-atomic.ts';

describe('writeFileAtomic', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-atomic-'));
    dirs.push(dir);
    return dir;
  };

  it('replaces the file with its mode, leaves no temporary file, and never writes through a link planted beside it', () => {
    const dir = tempDir();
    const path = join(dir, 'seed.yaml');
    writeFileSync(path, 'old');
    // What the old predictable name (.seed.yaml.PID.tmp) would have let a local user do: point it elsewhere.
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, join(dir, `.seed.yaml.${process.pid}.tmp`));
    writeFileAtomic(path, 'new', 0o600);
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') && !f.includes(String(process.pid)))).toEqual([]);
    writeFileAtomic(path, 'again', 0o600, { durable: false });
    expect(readFileSync(path, 'utf8')).toBe('again');
  });

  it('leaves the old file and no temporary one when the write cannot complete', () => {
    const dir = tempDir();
    const path = join(dir, 'in-the-way');
    mkdirSync(path);
    writeFileSync(join(path, 'kept'), 'old');
    expect(() => writeFileAtomic(path, 'data')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/); // the rename cannot replace a directory
    expect(readdirSync(dir)).toEqual(['in-the-way']);
    expect(readFileSync(join(path, 'kept'), 'utf8')).toBe('old');
  });
});
