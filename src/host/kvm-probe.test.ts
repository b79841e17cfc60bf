import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyProbe, formatSeconds, probeArgv, probeKvm, qemuErrorLine } from './kvm-probe.ts';

describe('probeArgv', () => {
  it('boots the disk under the accelerator with isa-debug-exit and the default CPU model', () => {
    const argv = probeArgv('/usr/bin/qemu-system-x86_64', 'kvm', '/tmp/p/boot.img');
    expect(argv[0]).toBe('/usr/bin/qemu-system-x86_64');
    expect(argv.join(' ')).toContain('-machine pc -accel kvm -nodefaults -no-user-config');
    expect(argv).toContain('file=/tmp/p/boot.img,format=raw,if=ide');
    expect(argv).toContain('isa-debug-exit,iobase=0xf4,iosize=0x04');
    expect(argv).not.toContain('-cpu');
    expect(argv[argv.indexOf('-m') + 1]).toBe('16');
    expect(probeArgv('q', 'tcg', '/tmp/a,b/boot.img')).toContain('file=/tmp/a,,b/boot.img,format=raw,if=ide');
  });
});

describe('classifyProbe', () => {
  const base = { accel: 'kvm' as const, stderr: '', timeoutMs: 3000 };

  it('is functional only for exit status 85', () => {
    const p = classifyProbe({ ...base, exitStatus: 85, elapsedMs: 240 });
    expect(p.verdict).toBe('functional');
    expect(p.detail).toBe('a test guest ran under KVM and finished in 240 ms');
  });

  it('hangs when QEMU was killed at the deadline', () => {
    const p = classifyProbe({ ...base, exitStatus: null, elapsedMs: 3004 });
    expect(p.verdict).toBe('hangs');
    expect(p.detail).toBe('a test guest did not run under KVM within 3 s');
  });

  it('fails when QEMU was killed early, exits with an error, or the guest gives the wrong value', () => {
    expect(classifyProbe({ ...base, exitStatus: null, elapsedMs: 200, stderr: 'x' }).verdict).toBe('fails');
    const err = classifyProbe({
      ...base,
      exitStatus: 1,
      elapsedMs: 30,
      stderr: 'qemu-system-x86_64: warning: host doesn\'t support requested feature\nCould not access KVM kernel module: Permission denied\nqemu-system-x86_64: failed to initialize kvm: Permission denied\n',
    });
    expect(err.verdict).toBe('fails');
    expect(err.detail).toBe('QEMU exited with status 1 under KVM: Could not access KVM kernel module: Permission denied');
    const wrong = classifyProbe({ ...base, accel: 'tcg', exitStatus: 117, elapsedMs: 90 });
    expect(wrong.verdict).toBe('fails');
    expect(wrong.detail).toBe('the test guest ended with status 117 instead of 85 under TCG');
  });

  it('picks the first non-warning stderr line', () => {
    expect(qemuErrorLine('a: warning: x\n\nb: real error\nc\n')).toBe('b: real error');
    expect(qemuErrorLine('a: warning: only this\n')).toBe('a: warning: only this');
    expect(qemuErrorLine('')).toBe('');
  });

  it('formats deadlines in seconds', () => {
    expect(formatSeconds(3000)).toBe('3 s');
    expect(formatSeconds(2500)).toBe('2.5 s');
  });
});

describe('probeKvm without a device', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('says absent without starting QEMU or writing a cache', async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtnode-kvm-probe-test-'));
    const started = performance.now();
    const p = await probeKvm({ cacheDir: join(dir, 'cache'), kvmDevice: join(dir, 'no-kvm') });
    expect(performance.now() - started).toBeLessThan(500);
    expect(p.verdict).toBe('absent');
    expect(p.detail).toBe(`${join(dir, 'no-kvm')} is absent`);
    expect(p.cached).toBe(false);
  });
});
