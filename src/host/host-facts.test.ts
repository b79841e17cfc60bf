import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deviceFacts, firmwareFacts, iommuFacts, parseCgroupMounts } from './host-facts.ts';

describe('parseCgroupMounts', () => {
  it('reads v1 controllers and the cgroup2 mount of a hybrid host like ours', () => {
    const mounts = [
      'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
      'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
      'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0',
      'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
      'cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0',
      'cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0',
      'cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0',
      'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
    ].join('\n');
    expect(parseCgroupMounts(mounts)).toEqual({
      v1Controllers: ['blkio', 'cpu', 'cpuacct', 'memory', 'pids'],
      v2Mount: '/sys/fs/cgroup/unified',
    });
    expect(parseCgroupMounts('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n')).toEqual({ v1Controllers: [], v2Mount: '/sys/fs/cgroup' });
    expect(parseCgroupMounts('')).toEqual({ v1Controllers: [] });
  });
});

describe('fact readers', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtnode-facts-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('deviceFacts: a character device that opens, a missing node, a regular file', async () => {
    expect(await deviceFacts('/dev/null')).toEqual({ path: '/dev/null', exists: true });
    expect(await deviceFacts(join(dir, 'none'))).toEqual({ path: join(dir, 'none'), exists: false });
    await writeFile(join(dir, 'file'), '');
    expect((await deviceFacts(join(dir, 'file'))).exists).toBe(false);
  });

  it('iommuFacts counts groups and finds DMAR/IVRS tables', async () => {
    await mkdir(join(dir, 'kernel/iommu_groups/0'), { recursive: true });
    await mkdir(join(dir, 'kernel/iommu_groups/1'), { recursive: true });
    await mkdir(join(dir, 'class/iommu/dmar0'), { recursive: true });
    await mkdir(join(dir, 'firmware/acpi/tables'), { recursive: true });
    await writeFile(join(dir, 'firmware/acpi/tables/DMAR'), '');
    await writeFile(join(dir, 'firmware/acpi/tables/APIC'), '');
    expect(await iommuFacts(dir)).toEqual({ groups: 2, units: ['dmar0'], acpiTables: ['DMAR'] });
    expect(await iommuFacts(join(dir, 'empty'))).toEqual({ groups: 0, units: [], acpiTables: [] });
  });

  it('firmwareFacts finds SeaBIOS and OVMF_CODE*.fd only', async () => {
    await mkdir(join(dir, 'seabios'));
    await mkdir(join(dir, 'OVMF'));
    await writeFile(join(dir, 'seabios/bios.bin'), '');
    for (const f of ['OVMF_CODE.fd', 'OVMF_CODE_4M.ms.fd', 'OVMF_VARS.fd', 'notes.txt']) await writeFile(join(dir, 'OVMF', f), '');
    expect(await firmwareFacts(dir)).toEqual({
      seabios: [join(dir, 'seabios/bios.bin')],
      ovmf: [join(dir, 'OVMF/OVMF_CODE.fd'), join(dir, 'OVMF/OVMF_CODE_4M.ms.fd')],
    });
    expect(await firmwareFacts(join(dir, 'none'))).toEqual({ seabios: [], ovmf: [] });
  });
});
