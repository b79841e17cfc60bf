import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProgram, parseQemuVersion, programVersion } from './programs.ts';

describe('parseQemuVersion', () => {
  it('reads QEMU and qemu-img version lines', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022\n')).toEqual({
      version: '7.2.22',
      line: 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)',
    });
    expect(parseQemuVersion('qemu-img version 8.0.0\n')?.version).toBe('8.0.0');
    expect(parseQemuVersion('something else')).toBeUndefined();
  });
});

describe('programVersion', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtnode-programs-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fakeQemu(version: string): Promise<string> {
    const path = join(dir, 'fake-qemu');
    const counter = join(dir, 'calls');
    await writeFile(path, `#!/bin/sh\necho x >> '${counter}'\necho 'QEMU emulator version ${version} (test)'\n`);
    await chmod(path, 0o755);
    return path;
  }
  const calls = async (): Promise<number> =>
    (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').length;

  it('runs --version once, then answers from the cache until the binary changes', async () => {
    const path = await fakeQemu('9.1.0');
    const cacheDir = join(dir, 'cache');
    expect(await programVersion(path, { cacheDir })).toMatchObject({ state: 'ok', path, version: '9.1.0' });
    expect(await programVersion(path, { cacheDir })).toMatchObject({ state: 'ok', version: '9.1.0' });
    expect(await calls()).toBe(1);
    expect(await programVersion(path, { cacheDir, refresh: true })).toMatchObject({ version: '9.1.0' });
    expect(await calls()).toBe(2);
    // An upgrade replaces the binary: new size/mtime/inode, so the version is read again.
    await rm(path);
    await fakeQemu('9.2.10');
    expect(await programVersion(path, { cacheDir })).toMatchObject({ version: '9.2.10' });
    expect(await calls()).toBe(3);
  });

  it('reports missing and broken programs', async () => {
    expect(await programVersion(join(dir, 'nope'))).toEqual({ state: 'missing', name: join(dir, 'nope') });
    const bad = join(dir, 'bad');
    await writeFile(bad, '#!/bin/sh\necho oops >&2\nexit 3\n');
    await chmod(bad, 0o755);
    const state = await programVersion(bad);
    expect(state.state).toBe('broken');
    expect(state.state === 'broken' ? state.detail : '').toContain('oops');
  });

  it('finds programs on PATH without running them', async () => {
    const path = await fakeQemu('1.0.0');
    expect(await findProgram('fake-qemu', { PATH: `/nonexistent:${dir}` })).toBe(path);
    expect(await findProgram('fake-qemu', { PATH: '/nonexistent' })).toBeUndefined();
    expect(await calls()).toBe(0);
  });
});
