import { readFileSync } from 'node:fs';

/**
 * Which cgroup hierarchy holds the memory controller: v1 (its own `memory` hierarchy, e.g. this project's build
 * machine) or v2 (the unified hierarchy, most hosts today). LXC takes `lxc.cgroup.*` keys for the first and
 * `lxc.cgroup2.*` for the second and ignores the other kind, so limits must be written for the one in use.
 */
export type CgroupVersion = 1 | 2;

/** From /proc/self/cgroup: a v1 line names its controllers (`4:memory:/path`); v2 has only `0::/path`. */
export function memoryCgroupVersion(procSelfCgroup: string): CgroupVersion {
  const v1 = procSelfCgroup.split('\n').some((line) => line.split(':')[1]?.split(',').includes('memory'));
  return v1 ? 1 : 2;
}

export function hostCgroupVersion(): CgroupVersion {
  return memoryCgroupVersion(readFileSync('/proc/self/cgroup', 'utf8'));
}

/** Does this host map `first`..`first+count-1` for root in /etc/subuid and /etc/subgid (LXC's idmap needs it)? */
export function subordinateIdsMissing(first: number, count: number, files: { subuid: string; subgid: string }): Array<'subuid' | 'subgid'> {
  const covers = (text: string) =>
    text.split('\n').some((line) => {
      const [owner, start, size] = line.trim().split(':');
      if (owner !== 'root' && owner !== '0') return false;
      const s = Number(start);
      const n = Number(size);
      return Number.isInteger(s) && Number.isInteger(n) && s <= first && first + count <= s + n;
    });
  const missing: Array<'subuid' | 'subgid'> = [];
  if (!covers(files.subuid)) missing.push('subuid');
  if (!covers(files.subgid)) missing.push('subgid');
  return missing;
}
