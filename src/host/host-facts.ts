/**
 * Reading the facts the checks judge: device nodes, cgroup mounts, IOMMU, firmware files. Each reader is small,
 * never throws for a missing file (absence is a fact), and takes its paths as parameters so tests can point it
 * elsewhere.
 */
import { constants } from 'node:fs';
import { open, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface DeviceFacts {
  path: string;
  exists: boolean;
  /** Why open(O_RDWR) failed (`EACCES`, ...); undefined when it opened or the node is absent. */
  openError?: string;
}

export async function deviceFacts(path: string): Promise<DeviceFacts> {
  try {
    if (!(await stat(path)).isCharacterDevice()) return { path, exists: false };
  } catch {
    return { path, exists: false };
  }
  try {
    const handle = await open(path, constants.O_RDWR | constants.O_NONBLOCK);
    await handle.close();
    return { path, exists: true };
  } catch (e) {
    return { path, exists: true, openError: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

export interface CgroupFacts {
  /** Controllers mounted as cgroup v1 hierarchies. */
  v1Controllers: string[];
  /** Mount point of the cgroup2 hierarchy (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`). */
  v2Mount?: string;
  /** Controllers available in the cgroup2 root (`cgroup.controllers`). */
  v2Controllers: string[];
}

const V1_CONTROLLERS = new Set([
  'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'net_prio', 'blkio', 'perf_event',
  'hugetlb', 'pids', 'rdma', 'misc',
]);

/** Pure: /proc/self/mounts text → v1 controllers and the cgroup2 mount point. */
export function parseCgroupMounts(mounts: string): { v1Controllers: string[]; v2Mount?: string } {
  const v1 = new Set<string>();
  let v2Mount: string | undefined;
  for (const line of mounts.split('\n')) {
    const [, mountPoint, fsType, opts] = line.split(' ');
    if (mountPoint === undefined || opts === undefined) continue;
    if (fsType === 'cgroup') {
      for (const o of opts.split(',')) if (V1_CONTROLLERS.has(o)) v1.add(o);
    } else if (fsType === 'cgroup2' && v2Mount === undefined) {
      v2Mount = mountPoint.replace(/\\040/g, ' ');
    }
  }
  const v1Controllers = [...v1].sort();
  return v2Mount === undefined ? { v1Controllers } : { v1Controllers, v2Mount };
}

export async function cgroupFacts(mountsPath = '/proc/self/mounts'): Promise<CgroupFacts> {
  let text = '';
  try {
    text = await readFile(mountsPath, 'utf8');
  } catch {
    // no /proc: no cgroups known
  }
  const parsed = parseCgroupMounts(text);
  let v2Controllers: string[] = [];
  if (parsed.v2Mount !== undefined) {
    try {
      v2Controllers = (await readFile(join(parsed.v2Mount, 'cgroup.controllers'), 'utf8')).split(/\s+/).filter((c) => c !== '').sort();
    } catch {
      // mounted but unreadable: report none
    }
  }
  return { ...parsed, v2Controllers };
}

export interface IommuFacts {
  /** Entries in /sys/kernel/iommu_groups. */
  groups: number;
  /** IOMMU units in /sys/class/iommu (dmar0, ivhd0, ...). */
  units: string[];
  /** ACPI tables announcing an IOMMU: DMAR (Intel VT-d), IVRS (AMD-Vi). */
  acpiTables: string[];
}

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

export async function iommuFacts(sysRoot = '/sys'): Promise<IommuFacts> {
  const [groups, units, tables] = await Promise.all([
    entries(join(sysRoot, 'kernel/iommu_groups')),
    entries(join(sysRoot, 'class/iommu')),
    entries(join(sysRoot, 'firmware/acpi/tables')),
  ]);
  return { groups: groups.length, units, acpiTables: tables.filter((t) => t === 'DMAR' || t === 'IVRS') };
}

export interface FirmwareFacts {
  seabios: string[];
  ovmf: string[];
}

async function existing(paths: readonly string[]): Promise<string[]> {
  const found = await Promise.all(
    paths.map(async (p) => {
      try {
        return (await stat(p)).isFile() ? p : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return found.filter((p) => p !== undefined);
}

export async function firmwareFacts(shareDir = '/usr/share'): Promise<FirmwareFacts> {
  const seabiosDir = join(shareDir, 'seabios');
  const ovmfDir = join(shareDir, 'OVMF');
  const ovmfNames = (await entries(ovmfDir)).filter((n) => /^OVMF_CODE.*\.fd$/.test(n));
  const [seabios, ovmf] = await Promise.all([
    existing([join(seabiosDir, 'bios-256k.bin'), join(seabiosDir, 'bios.bin')]),
    existing(ovmfNames.map((n) => join(ovmfDir, n))),
  ]);
  return { seabios, ovmf };
}
