import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempHome, virtnode } from '../helpers/cli.ts';

describe('virtnode host check (CLI)', () => {
  const { home, cleanup } = tempHome();
  afterAll(cleanup);

  it('on this machine: KVM present but not running guests, TCG chosen, with the reason', async () => {
    const r = await virtnode(home, ['host', 'check']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS {2}QEMU: \d+\.\d+/m);
    expect(r.stdout).toMatch(/^WARN {2}KVM runs guests: KVM is present but does not run guests/m);
    expect(r.stdout).toMatch(/^Accelerator: tcg \(.*did not run under KVM.*\)$/m);
  });

  it('--json gives the same verdict, machine-readable', async () => {
    const r = await virtnode(home, ['host', 'check', '--json']);
    const report = JSON.parse(r.stdout) as { accelerator: { chosen: string }; checks: Array<{ id: string; status: string }> };
    expect(report.accelerator.chosen).toBe('tcg');
    expect(report.checks.length).toBeGreaterThan(10);
  });

  it('--cpuinfo checks a capture from another host: vmx reported', async () => {
    const r = await virtnode(home, ['host', 'check', '--cpuinfo', join(REPO_ROOT, 'test/fixtures/cpuinfo/intel-xeon-vmx.txt')]);
    expect(r.stdout).toMatch(/^PASS {2}Hardware virtualization: vmx \(Intel VT-x\) \(from .*intel-xeon-vmx.txt\)$/m);
  });

  it('--cpuinfo with a missing file is a clear error naming the field', async () => {
    const r = await virtnode(home, ['host', 'check', '--cpuinfo', '/nonexistent/cpuinfo']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error: .*\/nonexistent\/cpuinfo/);
  });

  it('create with --accel kvm is refused at start on this host, naming the alternative', async () => {
    const { testGuest } = await import('../helpers/test-guest.ts');
    const g = testGuest();
    expect((await virtnode(home, ['create', 'k', '--accel', 'kvm', '--kernel', g.kernel, '--initrd', g.initrd])).code).toBe(0);
    const r = await virtnode(home, ['start', 'k']);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/hint: .*--accel tcg/);
    const info = await virtnode(home, ['info', 'k', '--format', 'json']);
    expect(JSON.parse(info.stdout)).toMatchObject({ state: 'defined' });
  });
});
