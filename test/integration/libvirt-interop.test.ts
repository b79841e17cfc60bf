/**
 * `virtnode import libvirt` and `virtnode export --format libvirt` through the real CLI: the virt-install fixtures
 * become instances that start under QEMU with the domain's UUID and MACs, virsh's dumpxml is read with --from
 * (the daemon-less test:/// driver over a node file), bad XML changes nothing, and the export is accepted by
 * virt-xml-validate and virsh define.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, qemuPidsUnder, tempHome, virtnode } from '../helpers/cli.ts';
import { run } from '../../src/exec/run.ts';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/libvirt');
const NO_DAEMON = { env: { VIRTNODE_NO_DAEMON: '1' } };

describe('libvirt domain XML in and out (CLI)', () => {
  const { home, cleanup } = tempHome('virtnode-libvirt-');
  afterAll(cleanup);
  const disks = join(home, 'libvirt-disks');
  /**
   * A fixture with its disk paths pointing at real files of its own in this test's directory, and its own UUID
   * (virt-install's predictable mode gives every fixture the same one).
   */
  const fixture = (name: string, uuidEnd = '444444444444'): string =>
    readFileSync(join(FIXTURES, `${name}.xml`), 'utf8')
      .replaceAll('/VIRTNODE_FIXTURE_DIR/disk.', `${disks}/${name}.`)
      .replace('00000000-1111-2222-3333-444444444444', `00000000-1111-2222-3333-${uuidEnd}`);
  const withoutKernel = (xml: string): string => xml.replace(/\s*<(kernel|initrd|cmdline)>.*<\/\1>/g, '');
  const write = (name: string, text: string): string => {
    const path = join(home, name);
    writeFileSync(path, text);
    return path;
  };
  const vn = (args: string[]) => virtnode(home, args, NO_DAEMON);

  it('imports a q35 domain, keeping its UUID, MAC and disk, and lists what it did not map', async () => {
    mkdirSync(disks);
    for (const [file, format] of [['q35-virtio-qcow2-network.qcow2', 'qcow2'], ['pc-sata-raw-bridge.raw', 'raw'], ['q35-virtio-raw-kernel-spice.raw', 'raw'], ['q35-virtio-raw-kernel-spice.qcow2', 'qcow2']]) {
      await run(['qemu-img', 'create', '-q', '-f', format!, join(disks, file!), '64M'], { timeoutMs: 30_000 });
    }
    const r = await vn(['import', 'libvirt', write('web1.xml', fixture('q35-virtio-qcow2-network')), '--memory', '256M', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { instance: { name: string; uuid: string; cpus: number; memoryMiB: number; nics: Array<{ mac: string; network: string }>; disks: Array<{ path: string; format: string }> }; warnings: Array<{ path: string }>; disks: Array<{ use: string }> };
    expect(result.instance).toMatchObject({ name: 'web1', uuid: '00000000-1111-2222-3333-444444444444', cpus: 2, memoryMiB: 256 });
    expect(result.instance.nics).toEqual([expect.objectContaining({ mac: '52:54:00:12:34:56', network: 'user' })]);
    const disk = join(disks, 'q35-virtio-qcow2-network.qcow2');
    expect(result.instance.disks).toEqual([expect.objectContaining({ path: disk, format: 'qcow2' })]);
    expect(result.disks).toEqual([{ path: disk, format: 'qcow2', use: 'referenced' }]);
    // libvirt's "default" network has no virtnode twin here: said, not silently changed.
    expect(result.warnings.map((w) => w.path)).toEqual(expect.arrayContaining(['/domain/metadata', '/domain/devices/interface/source/@network', '/domain/devices/input']));

    const text = await vn(['import', 'libvirt', write('db1.xml', fixture('pc-sata-raw-bridge', '000000000001')), '--cpus', '1', '--memory', '256M']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^db1 defined from libvirt \(uuid 00000000-1111-2222-3333-000000000001/);
    expect(text.stdout).toContain('/domain/os/type/@machine: machine pc');
    expect(text.stdout).toContain('/domain/devices/disk/target/@bus: bus sata');
  });

  it('refuses a second import of the same UUID, MAC or disk and defines nothing', async () => {
    const otherDisk = (xml: string) => xml.replace('q35-virtio-qcow2-network.qcow2', 'q35-virtio-raw-kernel-spice.qcow2');
    const sameUuid = await vn(['import', 'libvirt', write('again.xml', otherDisk(fixture('q35-virtio-qcow2-network')).replace('52:54:00:12:34:56', '52:54:00:12:34:99')), '--name', 'web2', '--memory', '256M']);
    expect(sameUuid.code).toBe(4);
    expect(sameUuid.stderr).toMatch(/UUID 00000000-1111-2222-3333-444444444444 is already instance web1's/);
    const sameDisk = await vn(['import', 'libvirt', write('again.xml', fixture('q35-virtio-qcow2-network', '000000000002')), '--name', 'web2', '--memory', '256M']);
    expect(sameDisk.code).toBe(4);
    expect(sameDisk.stderr).toMatch(/is already the disk of instance web1/);
    const sameMac = await vn(['import', 'libvirt', write('again.xml', otherDisk(fixture('q35-virtio-qcow2-network', '000000000002'))), '--name', 'web2', '--memory', '256M']);
    expect(sameMac.code).toBe(4);
    expect(sameMac.stderr).toMatch(/MAC address 52:54:00:12:34:56 is already in use/);
    const ls = await vn(['ls', '--format', 'json']);
    expect((JSON.parse(ls.stdout) as Array<{ name: string }>).map((i) => i.name).sort()).toEqual(['db1', 'web1']);
  });

  it('starts the imported domain under QEMU with the libvirt UUID and MAC', async () => {
    const r = await vn(['start', 'web1']);
    expect(r.code, r.stderr).toBe(0);
    const [pid] = qemuPidsUnder(home);
    expect(pid).toBeDefined();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline[cmdline.indexOf('-uuid') + 1]).toBe('00000000-1111-2222-3333-444444444444');
    expect(cmdline.join(' ')).toContain('mac=52:54:00:12:34:56');
    expect(cmdline.join(' ')).toContain(`filename=${join(disks, 'q35-virtio-qcow2-network.qcow2')}`);
    const stop = await vn(['stop', 'web1', '--force']);
    expect(stop.code, stop.stderr).toBe(0);
  });

  it('refuses bad XML with its line and creates nothing', async () => {
    const spice = withoutKernel(fixture('q35-virtio-raw-kernel-spice', '000000000003'));
    const broken = spice.replace('<vcpu>1</vcpu>', '<vcpu>1</vcpus>');
    const r = await vn(['import', 'libvirt', write('broken.xml', broken), '--memory', '256M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: xml: line 11, column \d+: <\/vcpus> closes <vcpu> \(line 11\)/);
    const missing = await vn(['import', 'libvirt', write('missing.xml', spice.replace('q35-virtio-raw-kernel-spice.raw', 'gone.raw')), '--memory', '256M']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`/domain/devices/disk[1]/source: ${disks}/gone.raw does not exist`);
    const ls = await vn(['ls', '--format', 'json']);
    expect((JSON.parse(ls.stdout) as Array<{ name: string }>).map((i) => i.name).sort()).toEqual(['db1', 'web1']);
  });

  it('reads a domain from libvirt with --from (virsh dumpxml)', async () => {
    const node = write('node.xml', `<node>\n${withoutKernel(fixture('q35-virtio-raw-kernel-spice', '555555555555'))}</node>\n`);
    const r = await vn(['import', 'libvirt', '--from', `test://${node}`, 'app1', '--memory', '256M', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { instance: { uuid: string; nics: Array<{ mac: string }>; disks: unknown[] } };
    expect(result.instance.uuid).toBe('00000000-1111-2222-3333-555555555555');
    expect(result.instance.nics.map((n) => n.mac)).toEqual(['52:54:00:ab:cd:02', '52:54:00:ab:cd:03']);
    expect(result.instance.disks).toHaveLength(2);
    const unknown = await vn(['import', 'libvirt', '--from', `test://${node}`, 'nosuch']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/virsh could not read domain nosuch/);
  });

  it('exports XML that virt-xml-validate and virsh define accept', async () => {
    for (const name of ['web1', 'db1', 'app1']) {
      const out = join(home, `${name}-export.xml`);
      const r = await vn(['export', name, '--format', 'libvirt', '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/note: the SMBIOS UUID/);
      const valid = await run(['virt-xml-validate', out, 'domain'], { timeoutMs: 30_000 });
      expect(valid.stdout + valid.stderr).toContain('validates');
      const defined = await run(['virsh', '--connect', 'test:///default', 'define', out], { timeoutMs: 30_000 });
      expect(defined.stdout).toContain(`Domain '${name}' defined`);
    }
    const bad = await vn(['export', 'web1', '--format', 'ovf']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--format: "ovf" is not a format virtnode writes/);
  });

  it('deleting an imported instance leaves its disk files', async () => {
    for (const name of ['web1', 'db1', 'app1']) expect((await vn(['delete', name, '--force'])).code).toBe(0);
    expect(qemuPidsUnder(home)).toEqual([]);
    expect(readdirSync(disks).sort()).toEqual(['pc-sata-raw-bridge.raw', 'q35-virtio-qcow2-network.qcow2', 'q35-virtio-raw-kernel-spice.qcow2', 'q35-virtio-raw-kernel-spice.raw']);
    expect(statSync(join(disks, 'pc-sata-raw-bridge.raw')).size).toBe(64 * 1024 * 1024);
  });
});
