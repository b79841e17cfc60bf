import { describe, expect, it } from 'vitest';
import { readApplianceConsole } from './seal-output.ts';

const consoleOf = (...lines: string[]) => lines.join('\r\n') + '\r\n';

describe('the sealing appliance console', () => {
  it('reports the root and the changes of a sealed disk', () => {
    const out = consoleOf('VIRTNODE-SEAL-BEGIN', 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4', 'emptied /etc/machine-id', 'removed /var/lib/cloud/sem', 'SEAL-OK', 'VIRTNODE-SEAL-DONE', '[    7.2] reboot: Power down');
    expect(readApplianceConsole(out)).toEqual({ kind: 'sealed', root: '/dev/vda1 ext4', changes: ['emptied /etc/machine-id', 'removed /var/lib/cloud/sem'] });
  });

  it('still reads a console that lost the LF or the CR of a line end (CI: "removed /var/lib/cloud/semSEAL-OK")', () => {
    const lostLf = 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4\r\nremoved /var/lib/cloud/sem\rSEAL-OK\r\nVIRTNODE-SEAL-DONE\r\n';
    const lostCr = 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4\r\nremoved /var/lib/cloud/sem\nSEAL-OK\r\nVIRTNODE-SEAL-DONE\r\n';
    const lostBoth = 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4\r\nremoved /var/lib/cloud/semSEAL-OK\r\nVIRTNODE-SEAL-DONE\r\n';
    for (const out of [lostLf, lostCr, lostBoth]) {
      expect(readApplianceConsole(out)).toEqual({ kind: 'sealed', root: '/dev/vda1 ext4', changes: ['removed /var/lib/cloud/sem'] });
    }
  });

  it('a disk without a Linux root is said so', () => {
    expect(readApplianceConsole(consoleOf('VIRTNODE-SEAL-BEGIN', 'VIRTNODE-SEAL-NOROOT'))).toEqual({ kind: 'no-root' });
  });

  it('a failure carries the appliance error and the end of the console', () => {
    const out = consoleOf('VIRTNODE-SEAL-BEGIN', 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4', 'removed /etc/ssh/ssh_host_rsa_key', 'VIRTNODE-SEAL-ERROR the sealing script failed');
    expect(readApplianceConsole(out)).toEqual({
      kind: 'failed',
      error: 'the sealing script failed',
      tail: ['VIRTNODE-SEAL-BEGIN', 'VIRTNODE-SEAL-ROOT /dev/vda1 ext4', 'removed /etc/ssh/ssh_host_rsa_key', 'VIRTNODE-SEAL-ERROR the sealing script failed'],
    });
  });

  it('neither marker alone counts as sealed: the script must finish and the appliance must unmount', () => {
    expect(readApplianceConsole(consoleOf('VIRTNODE-SEAL-ROOT /dev/vda1 ext4', 'SEAL-OK')).kind).toBe('failed');
    expect(readApplianceConsole(consoleOf('VIRTNODE-SEAL-ROOT /dev/vda1 ext4', 'removed /tmp/x', 'VIRTNODE-SEAL-DONE')).kind).toBe('failed');
    expect(readApplianceConsole('').kind).toBe('failed');
  });
});
