import { describe, expect, it } from 'vitest';
import { nfsUrl, parseNfsSource, parseNfsUrl } from './client.ts';

describe('NFS sources and URLs', () => {
  it('splits SERVER:/EXPORT and makes the URL QEMU opens', () => {
    const s = parseNfsSource('--source', '192.0.2.10:/srv/vm-disks/');
    expect(s).toEqual({ server: '192.0.2.10', export: '/srv/vm-disks' });
    expect(nfsUrl(s, 'a.qcow2')).toBe('nfs://192.0.2.10/srv/vm-disks/a.qcow2');
    expect(parseNfsUrl('nfs://192.0.2.10/srv/vm-disks/a.qcow2')).toEqual({ ...s, file: 'a.qcow2' });
    expect(nfsUrl(parseNfsSource('--source', 'nfs1.example.org:/'), 'b.raw')).toBe('nfs://nfs1.example.org/b.raw');
  });

  it.each([
    ['nocolon', /"nocolon" is not SERVER:\/EXPORT/],
    ['server:relative', /is not SERVER:\/EXPORT/],
    [':/export', /is not SERVER:\/EXPORT/],
    ['bad_host!:/export', /"bad_host!" is not a host name or address/],
    ['h:/srv/../etc', /is not a plain export path/],
    ['h:/srv/a b', /is not a plain export path/],
  ])('refuses %s naming --source', (text, message) => {
    expect(() => parseNfsSource('--source', text)).toThrow(message);
    expect(() => parseNfsSource('--source', text)).toThrow(/^--source: /);
  });
});
