import { describe, expect, it } from 'vitest';
import { memoryCgroupVersion, subordinateIdsMissing } from './cgroups.ts';

describe('cgroup version', () => {
  it('is v1 when a hierarchy lists the memory controller', () => {
    expect(memoryCgroupVersion('9:name=systemd:/\n4:memory:/x\n1:cpu:/\n0::/\n')).toBe(1);
    expect(memoryCgroupVersion('5:cpu,cpuacct,memory:/\n')).toBe(1);
  });
  it('is v2 on the unified hierarchy alone', () => {
    expect(memoryCgroupVersion('0::/user.slice/session-1.scope\n')).toBe(2);
    expect(memoryCgroupVersion('1:name=systemd:/\n0::/\n')).toBe(2);
  });
});

describe('subordinate ids', () => {
  it('finds a covering root range in each file', () => {
    expect(subordinateIdsMissing(100000, 65536, { subuid: 'root:100000:65536\n', subgid: 'alice:1:2\nroot:100000:200000\n' })).toEqual([]);
  });
  it('names the file that lacks it (absent, short, or another owner)', () => {
    expect(subordinateIdsMissing(100000, 65536, { subuid: '', subgid: 'root:100000:65536' })).toEqual(['subuid']);
    expect(subordinateIdsMissing(100000, 65536, { subuid: 'root:100000:1000', subgid: 'bob:100000:65536' })).toEqual(['subuid', 'subgid']);
  });
});
