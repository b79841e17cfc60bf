import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempHome, virtnode } from '../helpers/cli.ts';
import { kvmDeviceOpens, kvmEvidence, kvmExpectation } from '../helpers/kvm-evidence.ts';
import type { KvmEvidence, KvmExpectation } from '../helpers/kvm-evidence.ts';

/** A whole-string pattern as the middle of a line of a multi-line text. */
const inner = (pattern: RegExp): string => pattern.source.replace(/^\^/, '').replace(/\$$/, '');

/** The CLI on the machine running the tests: what it must say follows from the test's own KVM evidence. */
describe('virtnode host check (CLI)', () => {
  const { home, cleanup } = tempHome();
  let evidence: KvmEvidence;
  let want: KvmExpectation;
  beforeAll(async () => {
    evidence = await kvmEvidence();
    want = kvmExpectation(evidence.verdict, { deviceOpens: kvmDeviceOpens() });
    console.log(`KVM on this machine: ${evidence.verdict} (${evidence.seen})`);
  });
  afterAll(cleanup);

  it('says what KVM does on this machine and which accelerator guests get, with the reason', async () => {
    const r = await virtnode(home, ['host', 'check']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS {2}QEMU: \d+\.\d+/m);
    expect(r.stdout).toMatch(new RegExp(`^${want.device} {2}KVM device: /dev/kvm is`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${want.functional} {2}KVM runs guests: ${inner(want.functionalDetail)}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^Accelerator: ${want.accel} \\(${inner(want.reason)}\\)$`, 'm'));
  });

  it('--json gives the same verdict, machine-readable', async () => {
    const r = await virtnode(home, ['host', 'check', '--json']);
    const report = JSON.parse(r.stdout) as { accelerator: { chosen: string }; kvm: { verdict: string }; checks: Array<{ id: string; status: string }> };
    expect(report.kvm.verdict).toBe(evidence.verdict);
    expect(report.accelerator.chosen).toBe(want.accel);
    expect(report.checks.find((c) => c.id === 'kvm.functional')?.status).toBe(want.functional);
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

  it('create with --accel kvm starts only where KVM runs guests; elsewhere start refuses, naming the alternative', async () => {
    const { testGuest } = await import('../helpers/test-guest.ts');
    const g = testGuest();
    expect((await virtnode(home, ['create', 'k', '--accel', 'kvm', '--kernel', g.kernel, '--initrd', g.initrd])).code).toBe(0);
    const r = await virtnode(home, ['start', 'k']);
    const info = await virtnode(home, ['info', 'k', '--format', 'json']);
    if (want.kvmRequestRefused) {
      expect(r.code, r.stderr).toBe(11);
      expect(r.stderr).toMatch(/hint: .*--accel tcg/);
      expect(JSON.parse(info.stdout)).toMatchObject({ state: 'defined' });
    } else {
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(info.stdout)).toMatchObject({ state: 'running' });
    }
    expect((await virtnode(home, ['delete', '--force', 'k'])).code).toBe(0);
  });
});
