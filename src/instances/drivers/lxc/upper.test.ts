import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sealUpper } from './upper.ts';

describe('sealing a copied upper directory', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('removes what makes a container someone and keeps the rest', () => {
    const upper = mkdtempSync(join(tmpdir(), 'upper-'));
    dirs.push(upper);
    for (const d of ['etc/ssh', 'var/lib/cloud/instances/i-1', 'root', 'etc/systemd/network']) mkdirSync(join(upper, d), { recursive: true });
    for (const f of ['etc/machine-id', 'etc/ssh/ssh_host_ed25519_key', 'etc/ssh/ssh_host_ed25519_key.pub', 'etc/ssh/sshd_config', 'var/lib/cloud/instances/i-1/x', 'root/state', 'etc/systemd/network/10-cloud-init-eth0.network']) {
      writeFileSync(join(upper, f), 'x');
    }
    const removed = sealUpper(upper);
    expect(removed).toEqual(['/etc/machine-id', '/var/lib/cloud', '/etc/ssh/ssh_host_ed25519_key', '/etc/ssh/ssh_host_ed25519_key.pub', '/etc/systemd/network/10-cloud-init-eth0.network']);
    expect(readdirSync(join(upper, 'etc/ssh'))).toEqual(['sshd_config']);
    expect(readdirSync(join(upper, 'root'))).toEqual(['state']);
    expect(sealUpper(upper)).toEqual([]);
  });
});
