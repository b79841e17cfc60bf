import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSeed, withSeedDir } from './carried-seed.ts';
import type { MigrationOffer } from './protocol.ts';

let root: string | undefined;
afterEach(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

const offer = (seedDir: string): MigrationOffer => ({
  id: 'x',
  qemuVersion: { major: 8, minor: 2, micro: 0 },
  cpuModel: 'qemu64',
  vm: {
    name: 'm1',
    uuid: 'u',
    smbiosUuid: 's',
    accel: 'tcg',
    cpus: 1,
    memoryMiB: 128,
    nics: [
      { id: 'net0', mac: '52:54:00:00:00:01', backend: { kind: 'user', guestForwards: [{ address: '10.0.2.100', port: 80, command: ['/usr/bin/node', '/x/responder.js', seedDir] }] } },
      { id: 'net1', mac: '52:54:00:00:00:02', backend: { kind: 'tap', ifname: 'vn1' } },
    ],
  },
  disks: [],
  postcopy: false,
});

describe('the HTTP seed carried by a move', () => {
  it("points the metadata responder at the target's directory and changes nothing else", () => {
    const moved = withSeedDir(offer('/a/instances/m1/seed'), '/a/instances/m1/seed', '/b/instances/m1/seed');
    expect(moved.vm.nics[0]!.backend).toEqual({ kind: 'user', guestForwards: [{ address: '10.0.2.100', port: 80, command: ['/usr/bin/node', '/x/responder.js', '/b/instances/m1/seed'] }] });
    expect(moved.vm.nics[1]).toEqual(offer('').vm.nics[1]);
    expect({ ...moved, vm: { ...moved.vm, nics: [] } }).toEqual({ ...offer(''), vm: { ...offer('').vm, nics: [] } });
  });

  it("reads the seed's files; none when the instance has no seed directory", () => {
    root = mkdtempSync(join(tmpdir(), 'virtnode-seed-'));
    const dir = join(root, 'seed');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'meta-data'), 'instance-id: i-1\n');
    writeFileSync(join(dir, 'user-data'), '#cloud-config\n');
    expect(readSeed(dir)).toEqual({ from: dir, files: { 'meta-data': 'instance-id: i-1\n', 'user-data': '#cloud-config\n' } });
    expect(readSeed(undefined)).toBeUndefined();
    expect(readSeed(join(root, 'nothere'))).toBeUndefined();
  });
});
