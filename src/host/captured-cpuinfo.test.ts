import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_CPUINFO_BYTES, readCapturedCpuinfo } from './check-host.ts';

describe('readCapturedCpuinfo: a file a caller names (API ?cpuinfo=, --cpuinfo)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-cpuinfo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a regular file, and /proc/cpuinfo (whose size reads 0)', async () => {
    writeFileSync(join(dir, 'cpuinfo.txt'), 'processor\t: 0\nflags\t\t: fpu vmx\n');
    expect(await readCapturedCpuinfo(join(dir, 'cpuinfo.txt'))).toContain('vmx');
    expect(await readCapturedCpuinfo('/proc/cpuinfo')).toContain('processor');
  });

  it('refuses a device that never ends, a directory and an oversize file, naming the field; a missing file is NOT_FOUND', async () => {
    await expect(readCapturedCpuinfo('/dev/zero')).rejects.toMatchObject({ code: 'INVALID', field: '--cpuinfo', message: '--cpuinfo: /dev/zero is not a regular file' });
    await expect(readCapturedCpuinfo(dir)).rejects.toMatchObject({ field: '--cpuinfo' });
    writeFileSync(join(dir, 'huge.txt'), Buffer.alloc(MAX_CPUINFO_BYTES + 1, 0x61));
    await expect(readCapturedCpuinfo(join(dir, 'huge.txt'))).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/larger than/) });
    await expect(readCapturedCpuinfo(join(dir, 'missing.txt'))).rejects.toMatchObject({ code: 'NOT_FOUND', message: `cannot read cpuinfo file ${join(dir, 'missing.txt')}` });
  });
});
