import { execFileSync, spawnSync } from 'node:child_process';
import { expect } from 'vitest';

/**
 * `qemu-img check` of a disk; asserts it is clean. With `inUse` the image is open in a running QEMU (read with
 * -U), whose refcounts in memory are ahead of the file: leaked clusters (exit 3) are then expected and harmless,
 * corruptions never are.
 */
export function expectImageClean(path: string, options: { inUse?: boolean } = {}): void {
  const r = spawnSync('qemu-img', ['check', '-U', '--output=json', path], { encoding: 'utf8' });
  expect(options.inUse ? [0, 3] : [0], `qemu-img check ${path}: ${r.stdout}${r.stderr}`).toContain(r.status);
  const report = JSON.parse(r.stdout) as { corruptions?: number; leaks?: number; 'check-errors': number };
  expect(report.corruptions ?? 0).toBe(0);
  expect(report['check-errors']).toBe(0);
}

/** Internal snapshot tags inside a qcow2 file. */
export function internalTags(path: string): string[] {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })) as { snapshots?: Array<{ name: string }> };
  return (info.snapshots ?? []).map((s) => s.name).sort();
}

/** The backing chain of an image, top first. */
export function chainOf(path: string): string[] {
  const infos = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path], { encoding: 'utf8' })) as Array<{ filename: string }>;
  return infos.map((i) => i.filename);
}

export interface SnapshotTreeJson {
  name: string;
  kind: string;
  memory: boolean;
  current: boolean;
  createdAt: string;
  children: SnapshotTreeJson[];
}

/** The tree as nested [name, children] for compact assertions. */
export function shape(nodes: SnapshotTreeJson[]): unknown[] {
  return nodes.map((n) => (n.children.length === 0 ? n.name : [n.name, shape(n.children)]));
}
