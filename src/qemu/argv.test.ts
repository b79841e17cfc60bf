import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildArgv, escapeOptionValue } from './argv.ts';
import type { QemuSpec } from './spec.ts';

const dir = '/var/lib/virtnode/instances/web1';
const base: QemuSpec = {
  name: 'web1',
  uuid: '0b6f4a1e-8c4d-4e4f-9a55-2f1f0c7d3e11',
  smbiosUuid: '6d1c2f0a-3b4e-4c5d-8e9f-a0b1c2d3e4f5',
  accel: 'tcg',
  cpus: 2,
  memoryMiB: 1024,
  disks: [{ id: 'disk0', path: `${dir}/disk0.qcow2`, format: 'qcow2', readonly: false, bootIndex: 1 }],
  nics: [{ id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user' } }],
  paths: {
    qmp: `${dir}/qmp.sock`,
    qmpQuery: `${dir}/qmp-query.sock`,
    serial: `${dir}/serial.sock`,
    serialLog: `${dir}/console.log`,
    guestAgent: `${dir}/qga.sock`,
    vnc: `${dir}/vnc.sock`,
    pidfile: `${dir}/qemu.pid`,
  },
};

function golden(name: string, argv: string[]): void {
  const path = new URL(`./testdata/${name}.argv`, import.meta.url);
  const text = `${argv.join('\n')}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(path, text);
  expect(text).toBe(readFileSync(path, 'utf8'));
}

describe('buildArgv', () => {
  it('opens a disk on an NFS export with QEMU\'s own client (driver nfs, no aio) beside a host file (golden)', () => {
    golden(
      'nfs-disk',
      buildArgv({
        ...base,
        tuning: { diskAio: 'threads' },
        disks: [
          { id: 'disk0', path: 'nfs://192.0.2.10/srv/vm-disks/web1.disk0.qcow2', format: 'qcow2', readonly: false, bootIndex: 1 },
          { id: 'disk1', path: `${dir}/data.raw`, format: 'raw', readonly: false },
        ],
      }),
    );
  });

  it('applies every tuning knob: CPU model, NUMA on huge pages, disk I/O, multi-queue NIC, free page reporting (golden)', () => {
    golden(
      'tuned',
      buildArgv({
        ...base,
        accel: 'kvm',
        cpus: 4,
        memoryMiB: 2048,
        nics: [
          { id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user' } },
          { id: 'net1', mac: '52:54:00:12:34:57', backend: { kind: 'tap', ifname: 'vnt0123456789', queues: 4 } },
        ],
        tuning: { cpuModel: 'Skylake-Server-v4', numaNodes: 2, hugepages: true, diskCache: 'none', diskAio: 'native', discard: true, iothreads: true, diskQueues: 2, netQueues: 4, freePageReporting: true },
        hugepagePath: '/dev/hugepages',
      }),
    );
  });

  it('backs memory with one huge-page backend when there is one NUMA node, and keeps max under TCG', () => {
    const argv = buildArgv({ ...base, tuning: { hugepages: true, diskCache: 'writethrough' }, hugepagePath: '/mnt/huge' });
    expect(argv).toContain('q35,accel=tcg,memory-backend=ram-node0');
    expect(argv).toContain('memory-backend-file,id=ram-node0,size=1024M,mem-path=/mnt/huge,prealloc=on,share=off');
    expect(argv).not.toContain('-numa');
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('max');
    expect(argv.find((a) => a.startsWith('virtio-blk-pci'))).toContain('write-cache=off');
  });

  it('a warm state: the resolved machine type, a VM generation ID, waiting for the state (-incoming defer)', () => {
    const argv = buildArgv({ ...base, nics: [], machine: 'pc-q35-7.2', vmgenid: '8a6f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b', incoming: 'defer' });
    expect(argv[argv.indexOf('-machine') + 1]).toBe('pc-q35-7.2,accel=tcg');
    expect(argv.join(' ')).toContain('-device vmgenid,id=vmgenid0,guid=8a6f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b -incoming defer');
    expect(argv).not.toContain('virtio-net-pci');
  });

  it("a warm state's RAM file: shared for the boot that saves it, private (copy-on-write) for every load", () => {
    for (const share of [true, false]) {
      const argv = buildArgv({ ...base, nics: [], memoryFile: { path: '/var/lib/virtnode/templates/t/warm/memory.ram', share } });
      expect(argv).toContain('q35,accel=tcg,memory-backend=ram-node0');
      expect(argv).toContain(`memory-backend-file,id=ram-node0,size=1024M,mem-path=/var/lib/virtnode/templates/t/warm/memory.ram,share=${share ? 'on' : 'off'}`);
      expect(argv).not.toContain('-numa');
    }
  });

  it('pads the guest RAM by 8 KiB where asked (TCG, QEMU < 9.0): -m in K, no memory backend needed (golden)', () => {
    const argv = buildArgv({ ...base, memoryPadKiB: 8 });
    golden('padded-ram', argv);
    expect(argv[argv.indexOf('-m') + 1]).toBe('1048584K');
    expect(argv).not.toContain('-object');
  });

  it('pads each NUMA node\'s backend, and -m by their sum (golden)', () => {
    const argv = buildArgv({ ...base, cpus: 4, memoryMiB: 2048, memoryPadKiB: 8, tuning: { cpuModel: 'qemu64', numaNodes: 2 } });
    golden('padded-numa', argv);
    expect(argv[argv.indexOf('-m') + 1]).toBe(`${2048 * 1024 + 16}K`);
    expect(argv).toContain('memory-backend-ram,id=ram-node0,size=1048584K');
    expect(argv).toContain('memory-backend-ram,id=ram-node1,size=1048584K');
  });

  it("pads a warm state's RAM file backend and -m alike", () => {
    const argv = buildArgv({ ...base, nics: [], memoryPadKiB: 8, memoryFile: { path: '/var/lib/virtnode/templates/t/warm/memory.ram', share: false } });
    expect(argv[argv.indexOf('-m') + 1]).toBe('1048584K');
    expect(argv).toContain('memory-backend-file,id=ram-node0,size=1048584K,mem-path=/var/lib/virtnode/templates/t/warm/memory.ram,share=off');
  });

  it('keeps whole MiB without padding (KVM, QEMU 9.0+, huge pages: memoryPadKiB 0 or absent)', () => {
    for (const memoryPadKiB of [undefined, 0]) {
      const plain = buildArgv({ ...base, ...(memoryPadKiB === undefined ? {} : { memoryPadKiB }) });
      expect(plain[plain.indexOf('-m') + 1]).toBe('1024M');
      const huge = buildArgv({ ...base, ...(memoryPadKiB === undefined ? {} : { memoryPadKiB }), tuning: { hugepages: true }, hugepagePath: '/mnt/huge' });
      expect(huge).toContain('memory-backend-file,id=ram-node0,size=1024M,mem-path=/mnt/huge,prealloc=on,share=off');
    }
  });

  it('leaves the default machine untouched without tuning', () => {
    const argv = buildArgv(base);
    expect(argv).not.toContain('-object');
    expect(argv).toContain('q35,accel=tcg');
    expect(argv).toContain('virtio-balloon-pci,id=balloon0');
  });

  it('builds a q35 VM with a disk and a user-mode NIC (golden)', () => {
    golden('disk-user-nic', buildArgv(base));
  });

  it('gives a NIC on a managed network a tap virtnode made, next to a user-mode NIC (golden)', () => {
    golden(
      'tap-nics',
      buildArgv({
        ...base,
        nics: [
          { id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user', forwards: [{ protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53 }] } },
          { id: 'net1', mac: '52:54:00:12:34:57', backend: { kind: 'tap', ifname: 'vnt0123456789' } },
        ],
      }),
    );
  });

  it('boots a kernel directly, without disks or NICs (golden)', () => {
    golden(
      'kernel-boot',
      buildArgv({ ...base, disks: [], nics: [], cpus: 1, memoryMiB: 256, kernel: { path: '/k/vmlinuz', initrd: '/k/initrd.img', cmdline: 'console=ttyS0 quiet' } }),
    );
  });

  it('forwards host ports on loopback to the guest (user-mode networking)', () => {
    const argv = buildArgv({
      ...base,
      nics: [{ id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user', forwards: [
        { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 },
        { protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53 },
      ] } }],
    });
    expect(argv[argv.indexOf('-netdev') + 1]).toBe('user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53');
    const restricted = buildArgv({ ...base, nics: [{ id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user', restrict: true, forwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 }] } }] });
    expect(restricted[restricted.indexOf('-netdev') + 1]).toBe('user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22');
  });

  it('serves guest-only metadata through guestfwd and points cloud-init at it by SMBIOS serial', () => {
    const argv = buildArgv({
      ...base,
      smbiosSerial: 'ds=nocloud-net;s=http://10.0.2.100/',
      nics: [{ id: 'net0', mac: '52:54:00:12:34:56', backend: { kind: 'user', guestForwards: [
        { address: '10.0.2.100', port: 80, command: ['/usr/bin/node', '/opt/vn/responder.js', "/var/lib/it's,here/seed"] },
      ] } }],
    });
    expect(argv[argv.indexOf('-netdev') + 1]).toBe(
      "user,id=net0,guestfwd=tcp:10.0.2.100:80-cmd:'/usr/bin/node' '/opt/vn/responder.js' '/var/lib/it'\\''s,,here/seed'",
    );
    expect(argv[argv.indexOf('-smbios') + 1]).toBe(
      `type=1,uuid=${base.smbiosUuid},manufacturer=virtnode,product=virtnode VM,serial=ds=nocloud-net;s=http://10.0.2.100/`,
    );
  });

  it('uses the host CPU model under KVM', () => {
    const argv = buildArgv({ ...base, accel: 'kvm' });
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('host');
    expect(argv[argv.indexOf('-machine') + 1]).toBe('q35,accel=kvm');
  });

  it('escapes commas in paths so they cannot inject options', () => {
    const argv = buildArgv({ ...base, disks: [{ ...base.disks[0]!, path: '/tmp/a,format=raw' }] });
    expect(argv).toContain('driver=file,node-name=disk0-file,filename=/tmp/a,,format=raw,read-only=off');
    expect(escapeOptionValue('a,b,,c')).toBe('a,,b,,,,c');
  });

  it('starts paused, without defaults, with QMP, serial log, guest agent and VNC on UNIX sockets', () => {
    const argv = buildArgv(base);
    for (const flag of ['-S', '-nodefaults', '-no-user-config', '-no-shutdown']) expect(argv).toContain(flag);
    expect(argv.join(' ')).toContain(`socket,id=serial0,path=${dir}/serial.sock,server=on,wait=off,logfile=${dir}/console.log,logappend=on`);
    expect(argv.join(' ')).toContain('name=org.qemu.guest_agent.0');
    expect(argv[argv.indexOf('-vnc') + 1]).toBe(`unix:${dir}/vnc.sock`);
    expect(argv.some((a) => /^\d+$/.test(a) && a === '5900')).toBe(false);
  });
});
