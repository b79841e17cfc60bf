import { describe, expect, it } from 'vitest';
import { buildArgv } from './argv.ts';
import { type DevicePlace, placedAsRunning } from './placement.ts';
import type { QemuSpec } from './spec.ts';

const dir = '/var/lib/virtnode/instances/web1';
const spec: QemuSpec = {
  name: 'web1',
  uuid: '0b6f4a1e-8c4d-4e4f-9a55-2f1f0c7d3e11',
  smbiosUuid: '6d1c2f0a-3b4e-4c5d-8e9f-a0b1c2d3e4f5',
  accel: 'tcg',
  cpus: 1,
  memoryMiB: 128,
  disks: [
    { id: 'disk0', path: `${dir}/disk0.qcow2`, format: 'qcow2', readonly: false, bootIndex: 1 },
    { id: 'disk1', path: '/pool/data.raw', format: 'raw', readonly: false },
  ],
  nics: [
    { id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user' } },
    // A warm start's port, which the running QEMU's answer replaces.
    { id: 'net2', mac: '52:54:00:12:34:58', bus: 'hotplug0', backend: { kind: 'tap', ifname: 'vn-x-2' } },
  ],
  paths: { qmp: 'q', qmpQuery: 'qq', serial: 's', serialLog: 'l', guestAgent: 'g', vnc: 'v', pidfile: 'p' },
};
const root = (devfn: number): DevicePlace => ({ bus: 'pcie.0', devfn });
const running = new Map<string, DevicePlace>([
  ['disk0-dev', root(40)],
  ['disk1-dev', { bus: 'hotplug2', devfn: 0 }],
  ['net0-dev', root(48)],
  ['net2-dev', { bus: 'hotplug1', devfn: 0 }],
  ['hotplug1', root(16)],
  ['balloon0', root(56)],
]);

describe('placedAsRunning', () => {
  it('puts each disk and NIC on the port the running QEMU has it on, the others on the root bus', () => {
    const placed = placedAsRunning(spec, running);
    expect(placed.disks.map((d) => d.bus)).toEqual([undefined, 'hotplug2']);
    expect(placed.nics.map((n) => n.bus)).toEqual([undefined, 'hotplug1']);
    const argv = buildArgv(placed);
    expect(argv).toContain('virtio-blk-pci,id=disk1-dev,drive=disk1,bus=hotplug2');
    expect(argv).toContain('virtio-net-pci,id=net2-dev,netdev=net2,mac=52:54:00:12:34:58,bus=hotplug1');
  });

  it('refuses, naming the field, what the command line cannot repeat', () => {
    const without = new Map(running);
    without.delete('net2-dev');
    expect(() => placedAsRunning(spec, without)).toThrow(expect.objectContaining({ field: 'nics', message: "nics: web1's QEMU has no device net2-dev for its NIC 52:54:00:12:34:58" }));
    const slot1 = new Map(running).set('disk1-dev', { bus: 'hotplug2', devfn: 8 });
    expect(() => placedAsRunning(spec, slot1)).toThrow(expect.objectContaining({ field: 'disks', message: "disks: web1's disk disk1 sits on bus hotplug2 at devfn 8, which the target cannot repeat" }));
    const stranger = new Map(running).set('net7-dev', { bus: 'hotplug3', devfn: 0 });
    expect(() => placedAsRunning(spec, stranger)).toThrow(expect.objectContaining({ field: 'devices', message: "devices: web1's QEMU has net7-dev (on hotplug3), which its record does not have" }));
  });
});
