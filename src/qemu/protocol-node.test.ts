import { describe, expect, it } from 'vitest';
import { diskKey, protocolNode } from './protocol-node.ts';

describe('protocol nodes', () => {
  it('gives QEMU an nfs protocol node for nfs:// paths and a file node otherwise; one key per disk', () => {
    expect(protocolNode('nfs://h/srv/d.qcow2')).toEqual({ driver: 'nfs', server: { type: 'inet', host: 'h' }, path: '/srv/d.qcow2' });
    expect(protocolNode('/var/lib/d.qcow2')).toEqual({ driver: 'file', filename: '/var/lib/d.qcow2' });
    expect(diskKey('nfs://NFS1.example.org//srv//d.qcow2')).toBe('nfs://nfs1.example.org/srv/d.qcow2');
  });
});
