import { describe, expect, it } from 'vitest';
import { buildArgv } from '../../../qemu/argv.ts';
import type { WarmModel } from '../../../templates/model.ts';
import { runtimePaths } from '../../runtime.ts';
import { ramInFile, warmQemuSpec, warmRunningSpec } from './warm.ts';
import type { Instance } from '../../model.ts';
import type { QemuNic } from '../../../qemu/spec.ts';

const model: WarmModel = { qemuVersion: '7.2.22', machine: 'pc-q35-7.2', accel: 'tcg', cpus: 1, memoryMiB: 1024, ramFile: 'memory.ram' };
const launch = (m: WarmModel, incoming: boolean) =>
  buildArgv(warmQemuSpec(m, { name: 'w', uuid: 'u', smbiosUuid: 's', diskPath: '/d.qcow2', paths: runtimePaths('/i/w'), vmgenid: 'g', incoming, ramPath: '/t/warm/memory.ram' }));

describe("a warm state's RAM sizes", () => {
  it('the saving boot and every load use the padding the state recorded', () => {
    for (const incoming of [false, true]) {
      const argv = launch({ ...model, memoryPadKiB: 8 }, incoming);
      expect(argv[argv.indexOf('-m') + 1]).toBe('1048584K');
      expect(argv.find((a) => a.startsWith('memory-backend-file'))).toContain('size=1048584K,mem-path=/t/warm/memory.ram');
    }
  });
  it('a state saved without the field (before virtnode padded) loads unpadded, whatever this host would choose', () => {
    const argv = launch(model, true);
    expect(argv[argv.indexOf('-m') + 1]).toBe('1024M');
    expect(argv.find((a) => a.startsWith('memory-backend-file'))).toContain('size=1024M,');
  });
});

describe("a warm-started instance's device model, rebuilt for a live move's target", () => {
  const instance = {
    name: 'w',
    uuid: 'u',
    smbiosUuid: 's',
    nics: [],
    spec: { cpus: 1, memoryMiB: 1024, accel: 'auto', disks: [{ id: 'disk0', path: '/i/w/disk0.qcow2', format: 'qcow2', owned: true }], boot: { kernel: '/k' }, tuning: { cpuModel: 'qemu64' }, runtime: { accel: 'tcg', qemuVersion: '7.2.22', memoryPadKiB: 8, warm: { machine: 'pc-q35-7.2', vmgenid: 'g-1', ramBackend: true } } },
  } as unknown as Instance;
  const nics: QemuNic[] = [
    { id: 'net0', mac: '52:54:00:00:00:01', backend: { kind: 'user' } },
    { id: 'net1', mac: '52:54:00:00:00:02', backend: { kind: 'tap', ifname: 'vn-x' } },
  ];
  const argv = buildArgv(warmRunningSpec(instance, instance.spec.runtime!.warm!, { accel: 'tcg', paths: runtimePaths('/target/w'), nics }));

  it('the same machine, RAM block (ram-node0, no file), padding and generation ID as the load', () => {
    expect(argv[argv.indexOf('-machine') + 1]).toBe('pc-q35-7.2,accel=tcg,memory-backend=ram-node0');
    expect(argv).toContain('memory-backend-ram,id=ram-node0,size=1048584K');
    expect(argv.some((a) => a.includes('mem-path'))).toBe(false);
    expect(argv).toContain('vmgenid,id=vmgenid0,guid=g-1');
    expect(argv).not.toContain('-incoming');
  });

  it("the NICs on the hot-plug ports the load plugged them into, in order; the disk without a boot index (it boots a kernel)", () => {
    expect(argv).toContain('virtio-net-pci,id=net0-dev,netdev=net0,mac=52:54:00:00:00:01,bus=hotplug0');
    expect(argv).toContain('virtio-net-pci,id=net1-dev,netdev=net1,mac=52:54:00:00:00:02,bus=hotplug1');
    expect(argv.some((a) => a.includes('bootindex'))).toBe(false);
  });

  it('a warm state keeps its RAM in a file with a CPU model, not with huge pages, NUMA nodes or free page reporting', () => {
    expect(ramInFile({ tuning: { cpuModel: 'qemu64' } })).toBe(true);
    expect(ramInFile({ tuning: { hugepages: true } })).toBe(false);
    expect(ramInFile({ tuning: { numaNodes: 2 } })).toBe(false);
    expect(ramInFile({ tuning: { freePageReporting: true } })).toBe(false);
  });
});
