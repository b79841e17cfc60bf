import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../exec/run.ts';
import type { Instance } from '../instances/model.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { type ExportNetwork, exportLibvirtDomain } from './libvirt-export.ts';
import { type ImportedDomain, readLibvirtDomain } from './libvirt-import.ts';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/libvirt/', import.meta.url));
const fixture = (name: string) => readFileSync(join(FIXTURES, `${name}.xml`), 'utf8');
const SHAPES = ['q35-virtio-qcow2-network', 'pc-sata-raw-bridge', 'q35-virtio-raw-kernel-spice'] as const;

const scratch = mkdtempSync(join(tmpdir(), 'virtnode-libvirt-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What virtnode would define from an imported domain (the app layer does this over the real services). */
function asInstance(d: ImportedDomain): Instance {
  return {
    name: d.name,
    uuid: d.uuid!,
    type: 'vm',
    smbiosUuid: '6b1d2c1e-0000-4000-8000-000000000001',
    state: 'defined',
    stateReason: undefined,
    spec: {
      cpus: d.cpus,
      memoryMiB: d.memoryMiB,
      accel: d.accel,
      disks: d.disks.map((x, i) => ({ id: `disk${i}`, path: x.path, format: x.format ?? (x.path.endsWith('.qcow2') ? 'qcow2' : 'raw'), owned: false, ...(x.readonly ? { readonly: true } : {}) })),
      ...(d.boot === undefined ? {} : { boot: d.boot }),
      ...(Object.keys(d.tuning).length === 0 ? {} : { tuning: d.tuning }),
    },
    nics: d.nics.map((n, index) => ({ index, mac: n.mac!, network: n.source.kind === 'user' ? 'user' : n.source.kind === 'bridge' ? 'lan' : n.source.name })),
    pid: undefined,
    pidStart: undefined,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
}

const NETWORKS: Record<string, ExportNetwork> = { default: { mode: 'nat', bridge: 'vn0' }, lab: { mode: 'isolated', bridge: 'vn1' }, lan: { mode: 'bridge', bridge: 'br0' } };

/** libvirt's own checks: the RelaxNG schema (virt-xml-validate) and a define on the daemon-less test driver. */
async function libvirtAccepts(xml: string, file: string): Promise<void> {
  const path = join(scratch, file);
  writeFileSync(path, xml);
  const validated = await run(['virt-xml-validate', path, 'domain'], { timeoutMs: 30_000 });
  expect(validated.stdout + validated.stderr).toContain('validates');
  const defined = await run(['virsh', '--connect', 'test:///default', 'define', path], { timeoutMs: 30_000 });
  expect(defined.stdout).toMatch(/Domain '.+' defined/);
}

function invalidAt(xml: string): { field: string | undefined; message: string } {
  try {
    readLibvirtDomain(xml, { field: 'domain.xml' });
  } catch (e) {
    if (!isVirtnodeError(e, 'INVALID')) throw e;
    return { field: e.field, message: e.message };
  }
  throw new Error('no error');
}

describe('readLibvirtDomain (virt-install --print-xml fixtures)', () => {
  it('maps a q35 domain with a virtio qcow2 disk, a network NIC, VNC and the guest agent', () => {
    const { domain, warnings } = readLibvirtDomain(fixture('q35-virtio-qcow2-network'));
    expect(domain).toEqual({
      name: 'web1',
      uuid: '00000000-1111-2222-3333-444444444444',
      accel: 'auto',
      memoryMiB: 1024,
      cpus: 2,
      machine: 'q35',
      cpuMode: 'host-passthrough',
      disks: [{ location: '/domain/devices/disk', path: '/VIRTNODE_FIXTURE_DIR/disk.qcow2', bus: 'virtio', cache: 'none', device: 'disk', readonly: false, tuning: { diskCache: 'none' } }],
      nics: [{ location: '/domain/devices/interface', mac: '52:54:00:12:34:56', model: 'virtio', source: { kind: 'network', name: 'default' }, tuning: {} }],
      graphics: ['vnc'],
      serial: true,
      guestAgent: true,
      // cache="none" is kept as the instance's disk cache mode (QEMU's none: direct I/O).
      tuning: { diskCache: 'none' },
    });
    expect(warnings.map((w) => w.path)).toEqual([
      '/domain/metadata',
      '/domain/clock/timer[1]',
      '/domain/clock/timer[2]',
      '/domain/clock/timer[3]',
      '/domain/pm',
      '/domain/devices/controller[1]',
      '/domain/devices/input',
    ]);
  });

  it('reports a pc machine, a SATA disk, an e1000e NIC and a host-model CPU as mapped differently', () => {
    const { domain, warnings } = readLibvirtDomain(fixture('pc-sata-raw-bridge'));
    expect(domain).toMatchObject({ name: 'db1', machine: 'pc', cpuMode: 'host-model', cpus: 4, memoryMiB: 2048, graphics: [], serial: true, guestAgent: true });
    expect(domain.disks).toEqual([{ location: '/domain/devices/disk', path: '/VIRTNODE_FIXTURE_DIR/disk.raw', bus: 'sata', cache: 'writeback', device: 'disk', readonly: false, tuning: { diskCache: 'writeback' } }]);
    expect(domain.nics).toEqual([{ location: '/domain/devices/interface', mac: '52:54:00:ab:cd:01', model: 'e1000e', source: { kind: 'bridge', name: 'br0' }, tuning: {} }]);
    const byPath = Object.fromEntries(warnings.map((w) => [w.path, w.message]));
    expect(byPath['/domain/os/type/@machine']).toMatch(/machine pc: virtnode's machines are q35/);
    expect(byPath['/domain/devices/disk/target/@bus']).toMatch(/bus sata: virtnode attaches disks as virtio-blk/);
    expect(byPath['/domain/devices/interface/model/@type']).toMatch(/model e1000e/);
    expect(byPath['/domain/devices/disk/driver/@cache']).toBeUndefined(); // writeback is virtnode's own
  });

  it('maps kernel boot, two disks, network and user NICs and a custom CPU model; reports SPICE, sound and redirdevs', () => {
    const { domain, warnings } = readLibvirtDomain(fixture('q35-virtio-raw-kernel-spice'));
    expect(domain.boot).toEqual({ kernel: '/boot/vmlinuz-test', initrd: '/boot/initrd-test', cmdline: 'console=ttyS0 root=/dev/vda' });
    expect(domain.disks.map((d) => [d.path, d.bus, d.cache])).toEqual([
      ['/VIRTNODE_FIXTURE_DIR/disk.raw', 'virtio', undefined],
      ['/VIRTNODE_FIXTURE_DIR/disk.qcow2', 'scsi', 'unsafe'],
    ]);
    expect(domain.nics.map((n) => n.source)).toEqual([{ kind: 'network', name: 'lab' }, { kind: 'user' }]);
    expect(domain.graphics).toEqual([]);
    const paths = warnings.map((w) => w.path);
    expect(domain.tuning.cpuModel).toBeDefined();
    // Only the second disk asks for cache="unsafe": virtnode has one mode per instance, so the default stays.
    expect(domain.tuning.diskCache).toBeUndefined();
    expect(warnings.find((w) => /diskCache differs between devices/.test(w.message))?.path).toBe('/domain/devices/disk[2]');
    for (const p of ['/domain/features/vmport', '/domain/devices/graphics', '/domain/devices/sound', '/domain/devices/redirdev[1]', '/domain/devices/redirdev[2]', '/domain/devices/channel[2]', '/domain/devices/video/model/@type']) {
      expect(paths).toContain(p);
    }
    // One warning for the SPICE display, not one more per attribute inside it.
    expect(paths.filter((p) => p.startsWith('/domain/devices/graphics'))).toEqual(['/domain/devices/graphics']);
  });

  it('reports an element or attribute it does not know instead of dropping it', () => {
    const xml = fixture('q35-virtio-qcow2-network').replace('<vcpu>2</vcpu>', '<vcpu current="1">2</vcpu><iothreads>2</iothreads>').replace('<driver name="qemu" cache="none"/>', '<driver name="qemu" type="qcow2" io="native" copy_on_read="on"/>');
    const { domain, warnings } = readLibvirtDomain(xml);
    expect(domain.disks[0]!.format).toBe('qcow2');
    expect(warnings).toContainEqual({ path: '/domain/vcpu/@current', message: 'not mapped: current="1"' });
    expect(warnings).toContainEqual({ path: '/domain/devices/disk/driver/@copy_on_read', message: 'not mapped: copy_on_read="on"' });
    expect(domain.tuning).toEqual({ diskAio: 'native' });
  });

  it('refuses bad XML and values virtnode cannot take, naming where', () => {
    expect(invalidAt('<domain type="kvm">\n  <name>x</name>\n  <memory>1024</memory\n</domain>').message).toMatch(/^domain.xml: line 4, column 1: ">" was expected/);
    expect(invalidAt('<network><name>x</name></network>').message).toMatch(/the root element is <network>/);
    expect(invalidAt('<domain type="kvm"><memory>1</memory></domain>').field).toBe('/domain/name');
    expect(invalidAt('<domain type="kvm"><name>x</name></domain>').field).toBe('/domain/memory');
    expect(invalidAt('<domain type="kvm"><name>x</name><memory unit="parsecs">1</memory></domain>').field).toBe('/domain/memory');
    expect(invalidAt('<domain type="kvm"><name>x</name><uuid>nope</uuid><memory>1</memory></domain>').field).toBe('/domain/uuid');
    const vmdk = fixture('q35-virtio-qcow2-network').replace('<driver name="qemu" cache="none"/>', '<driver name="qemu" type="vmdk"/>');
    expect(invalidAt(vmdk)).toMatchObject({ field: '/domain/devices/disk/driver/@type', message: expect.stringMatching(/vmdk images are not supported/) });
    const badMac = fixture('q35-virtio-qcow2-network').replace('52:54:00:12:34:56', '52:54:00:12:34');
    expect(invalidAt(badMac).field).toBe('/domain/devices/interface/mac/@address');
  });
});

describe('exportLibvirtDomain', () => {
  it.each(SHAPES)('round trip of %s: import → export is accepted by libvirt and imports to the same machine', async (shape) => {
    const first = readLibvirtDomain(fixture(shape)).domain;
    const instance = asInstance(first);
    const exported = exportLibvirtDomain(instance, (n) => NETWORKS[n]);
    await libvirtAccepts(exported.xml, `${shape}.xml`);
    const again = readLibvirtDomain(exported.xml);
    expect(again.domain).toMatchObject({ name: first.name, uuid: first.uuid, cpus: first.cpus, memoryMiB: first.memoryMiB, machine: 'q35', serial: true, guestAgent: true, graphics: ['vnc'] });
    expect(again.domain.boot).toEqual(first.boot);
    expect(again.domain.disks.map((d) => [d.path, d.format, d.bus, d.readonly])).toEqual(instance.spec.disks.map((d) => [d.path, d.format, 'virtio', false]));
    expect(again.domain.nics.map((n) => n.mac)).toEqual(first.nics.map((n) => n.mac));
    expect(again.domain.nics.map((n) => n.source)).toEqual(first.nics.map((n) => n.source));
    // What virtnode writes it reads back, except its own note and the power-event actions.
    expect(again.warnings.map((w) => w.path)).toEqual(['/domain/description', '/domain/on_poweroff', '/domain/on_reboot', '/domain/on_crash']);
  });

  it('writes TCG as domain type qemu with the maximum CPU, a read-only seed disk, and says what it cannot carry', async () => {
    const base = asInstance(readLibvirtDomain(fixture('q35-virtio-qcow2-network')).domain);
    const instance: Instance = {
      ...base,
      spec: {
        ...base.spec,
        accel: 'tcg',
        disks: [...base.spec.disks, { id: 'seed', path: '/var/lib/virtnode/instances/web1/seed.iso', format: 'raw', owned: true, readonly: true }],
        portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 }],
      },
      nics: [{ index: 0, mac: '52:54:00:12:34:56', network: 'user' }, { index: 1, mac: '52:54:00:12:34:57', network: 'default' }],
    };
    const out = exportLibvirtDomain(instance, (n) => NETWORKS[n]);
    await libvirtAccepts(out.xml, 'tcg.xml');
    expect(out.xml).toContain('<domain type="qemu">');
    expect(out.xml).toContain('<cpu mode="maximum"/>');
    expect(out.xml).toMatch(/<source file="\/var\/lib\/virtnode\/instances\/web1\/seed.iso"\/>\n\s+<target dev="vdb" bus="virtio"\/>\n\s+<readonly\/>/);
    expect(out.warnings.join('\n')).toMatch(/port forward/);
    expect(out.warnings.join('\n')).toMatch(/virtnode network default: libvirt needs a network of that name/);
    expect(out.warnings.join('\n')).toMatch(/SMBIOS UUID 6b1d2c1e/);
  });
});

describe('tuning through libvirt XML', () => {
  const tuning = {
    cpuModel: 'Skylake-Server-v4',
    vcpuPins: [3, 2, 1, 0],
    emulatorPins: [0, 1],
    numaNodes: 2,
    hugepages: true,
    diskCache: 'none' as const,
    diskAio: 'native' as const,
    discard: true,
    iothreads: true,
    diskQueues: 2,
    netQueues: 4,
    freePageReporting: true,
  };

  it("exports every knob in libvirt's words (validated and defined by libvirt) and reads them back the same", async () => {
    const { domain } = readLibvirtDomain(fixture('q35-virtio-qcow2-network'));
    const instance = asInstance({ ...domain, cpus: 4, memoryMiB: 2048 });
    instance.spec.tuning = tuning;
    const { xml } = exportLibvirtDomain(instance, (n) => NETWORKS[n]);
    await libvirtAccepts(xml, 'tuned.xml');
    const back = readLibvirtDomain(xml);
    expect(back.domain.tuning).toEqual(tuning);
    expect(back.warnings.filter((w) => /cputune|memoryBacking|numa|iothread|queues|freePageReporting|cache|@io/.test(w.path))).toEqual([]);
  });

  it('keeps what virtnode cannot express out, saying why', () => {
    const xml = fixture('q35-virtio-qcow2-network')
      .replace('<vcpu>2</vcpu>', '<vcpu>2</vcpu><cputune><vcpupin vcpu="0" cpuset="0-1"/><vcpupin vcpu="1" cpuset="1"/></cputune>')
      .replace(/<\/devices>/, '<disk type="file" device="disk"><driver name="qemu" type="raw" cache="unsafe"/><source file="/x.raw"/><target dev="vdz" bus="virtio"/></disk></devices>');
    const { domain, warnings } = readLibvirtDomain(xml);
    expect(domain.tuning.vcpuPins).toBeUndefined();
    expect(warnings.map((w) => w.message).join('\n')).toMatch(/vCPU 0 may run on 0-1: virtnode pins each vCPU to one host CPU/);
    expect(domain.tuning.diskCache).toBeUndefined();
    expect(warnings.map((w) => w.message).join('\n')).toMatch(/diskCache differs between devices \(\/domain\/devices\/disk\[1\]: none, \/domain\/devices\/disk\[2\]: unsafe\)/);
  });
});
