import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homeTag } from '../../src/network/names.ts';

export interface ContainerFootprint {
  links: string[];
  mounts: string[];
  cgroups: string[];
}

/**
 * The links, mounts and LXC cgroups of one state directory and its containers, to compare before and after. Only
 * its own: other test files run at the same time in the same namespace and make links and mounts of their own.
 */
export function containerFootprint(home: string, names: readonly string[]): ContainerFootprint {
  const tag = `${homeTag(home)}:`;
  const links = (JSON.parse(execFileSync('ip', ['-json', '-details', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string; ifalias?: string }>)
    .filter((l) => l.ifalias?.startsWith(tag) === true)
    .map((l) => l.ifname)
    .sort();
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(home) || names.some((n) => p.includes(`/${n}`)))
    .sort();
  const cgroups: string[] = [];
  for (const controller of readdirSync('/sys/fs/cgroup')) {
    try {
      for (const entry of readdirSync(join('/sys/fs/cgroup', controller))) if (names.some((n) => entry.includes(`.${n}`))) cgroups.push(`${controller}/${entry}`);
    } catch {
      // not a directory
    }
  }
  return { links, mounts, cgroups: cgroups.sort() };
}
