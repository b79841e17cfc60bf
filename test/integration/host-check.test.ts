/**
 * The host check on this real machine (see /work/shared/design/HOST-FACTS.md): /dev/kvm exists but KVM does not
 * run guests, so the functional probe must say so and everything must fall back to TCG. The same boot sector
 * under TCG proves the probe guest itself works, which is what makes the KVM verdict trustworthy.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { findProgram } from '../../src/host/programs.ts';
import {
  DEFAULT_PROBE_TIMEOUT_MS,
  checkHost,
  formatHostReport,
  probeKvm,
  resolveAccelerator,
  runProbeGuest,
} from '../../src/host/index.ts';
import type { HostReport } from '../../src/host/index.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/cpuinfo');
const PROBE_DIR_PREFIX = 'virtnode-accel-probe-';
const CACHED_CALL_LIMIT_MS = 50;

async function probeDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.startsWith(PROBE_DIR_PREFIX));
}

/** QEMU processes started by the probe: their command line names a probe temp dir. */
async function probeQemus(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('qemu-system') && cmdline.includes(PROBE_DIR_PREFIX)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Other test files may run a probe of their own at the same time (each ends within its deadline), so "nothing
 * left behind" means: gone once every probe in flight has had time to end.
 */
async function settled<T>(read: () => Promise<T>, expected: T, withinMs = 8_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  let value = await read();
  while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    value = await read();
  }
  return value;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe('host check on this machine', () => {
  let cacheDir: string;
  let dirsBefore: string[];

  beforeAll(async () => {
    for (const program of ['qemu-system-x86_64', 'qemu-img']) {
      if ((await findProgram(program)) === undefined) {
        throw new Error(`${program} is missing: apt-get install -y qemu-system-x86 qemu-utils`);
      }
    }
    if (!existsSync('/usr/share/seabios/bios-256k.bin')) throw new Error('SeaBIOS is missing: apt-get install -y seabios');
    if (!existsSync('/dev/kvm')) throw new Error('this test expects /dev/kvm to exist, as HOST-FACTS.md describes');
    cacheDir = await mkdtemp(join(tmpdir(), 'virtnode-host-check-test-'));
    dirsBefore = await probeDirs();
  });

  afterAll(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('the probe guest runs under TCG and exits with the expected status', async () => {
    const probe = await runProbeGuest('tcg', { timeoutMs: 10_000 });
    expect(probe.detail).toMatch(/^a test guest ran under TCG and finished in \d+ ms$/);
    expect(probe.verdict).toBe('functional');
    expect(probe.exitStatus).toBe(85);
    expect(probe.elapsedMs).toBeLessThan(5_000);
  });

  it('a deadline too short for any boot is reported as hangs, not as working', async () => {
    const probe = await runProbeGuest('tcg', { timeoutMs: 1 });
    expect(probe.verdict).toBe('hangs');
    expect(await settled(probeQemus, [])).toEqual([]);
  });

  it('KVM here is present but does not run the guest within the deadline', async () => {
    const started = performance.now();
    const probe = await probeKvm({ cacheDir, refresh: true });
    const elapsed = performance.now() - started;
    expect(probe.verdict).toBe('hangs');
    expect(probe.cached).toBe(false);
    expect(probe.detail).toBe('a test guest did not run under KVM within 3 s');
    expect(elapsed).toBeGreaterThanOrEqual(DEFAULT_PROBE_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(DEFAULT_PROBE_TIMEOUT_MS + 2_000);
    // The verdict is cached by boot id, kernel release and QEMU version.
    const cache = JSON.parse(await readFile(join(cacheDir, 'kvm-probe.json'), 'utf8')) as {
      key: Record<string, unknown>;
      result: { verdict: string };
    };
    expect(cache.result.verdict).toBe('hangs');
    expect(cache.key['bootId']).toBe((await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    expect(cache.key['qemuVersion']).toMatch(/^\d+\.\d+/);
    // QEMU was killed at the deadline and nothing is left behind.
    expect(await settled(probeQemus, [])).toEqual([]);
  });

  it('a cancelled probe stops QEMU at once', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = performance.now();
    let caught: unknown;
    try {
      await runProbeGuest('kvm', { timeoutMs: 10_000, signal: controller.signal });
    } catch (e) {
      caught = e;
    }
    expect(isVirtnodeError(caught, 'TIMEOUT')).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);
    // run() settles on abort before QEMU has exited; give the kernel a moment to reap it.
    expect(await settled(probeQemus, [])).toEqual([]);
  });

  it('checkHost chooses TCG and says why, with KVM present but not running guests', async () => {
    const report = await checkHost({ cacheDir });
    expect(report.accelerator).toEqual({
      chosen: 'tcg',
      reason: '/dev/kvm is present but a test guest did not run under KVM within 3 s; using TCG (software emulation, slower)',
    });
    const byId = new Map(report.checks.map((c) => [c.id, c]));
    expect(byId.get('kvm.device')?.status).toBe('PASS');
    expect(byId.get('kvm.functional')?.status).toBe('WARN');
    expect(byId.get('kvm.functional')?.detail).toMatch(/^KVM is present but does not run guests: .*TCG \(software emulation, slower\) will be used$/);
    // This host's CPU: AMD EPYC without svm (see the captured fixture).
    expect(byId.get('cpu.hwvirt')?.status).toBe('WARN');
    expect(byId.get('cpu.64bit')?.status).toBe('PASS');
    expect(report.cpu.source).toBe('/proc/cpuinfo');
    expect(report.cpu.logicalCpus).toBeGreaterThan(0);
    expect(byId.get('qemu')?.status).toBe('PASS');
    expect(report.qemu.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(report.qemu.imgVersion).toBe(report.qemu.version);
    expect(byId.get('firmware.seabios')?.status).toBe('PASS');
    expect(byId.get('cgroups')?.detail).toContain('memory');
    expect(byId.get('dev.tun')?.status).toBe('PASS');
    expect(report.checks.map((c) => c.id)).toEqual([
      'cpu.vendor', 'cpu.64bit', 'cpu.hwvirt', 'kvm.device', 'kvm.access', 'kvm.functional', 'dev.tun',
      'dev.vhost-net', 'cgroups', 'iommu', 'qemu', 'qemu-img', 'firmware.seabios', 'firmware.ovmf',
    ]);
    for (const c of report.checks) if (c.status !== 'PASS') expect(c.hint, c.id).toBeTruthy();
    const text = formatHostReport(report);
    expect(text).toContain('WARN  KVM runs guests: KVM is present but does not run guests');
    expect(text.trimEnd().split('\n').at(-1)).toBe(`Accelerator: tcg (${report.accelerator.reason})`);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it('with a captured Intel cpuinfo, the CPU checks come from the file and devices from this host', async () => {
    const file = join(FIXTURES, 'intel-xeon-vmx.txt');
    const report = await checkHost({ cpuinfoPath: file, cacheDir });
    const byId = new Map(report.checks.map((c) => [c.id, c]));
    expect(byId.get('cpu.hwvirt')).toMatchObject({ status: 'PASS', detail: `vmx (Intel VT-x) (from ${file})` });
    expect(byId.get('cpu.vendor')?.detail).toBe(`GenuineIntel, Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz, 2 logical CPUs (from ${file})`);
    expect(report.cpu.source).toBe(file);
    // The flag in a file does not make this host's KVM work.
    expect(byId.get('kvm.functional')?.status).toBe('WARN');
    expect(report.accelerator.chosen).toBe('tcg');
  });

  it('a missing --cpuinfo file is a NOT_FOUND error on that field', async () => {
    let caught: unknown;
    try {
      await checkHost({ cpuinfoPath: join(cacheDir, 'missing.txt'), cacheDir });
    } catch (e) {
      caught = e;
    }
    expect(isVirtnodeError(caught, 'NOT_FOUND')).toBe(true);
    expect(isVirtnodeError(caught) ? caught.field : undefined).toBe('--cpuinfo');
  });

  it('cached calls take milliseconds', async () => {
    const checkTimes: number[] = [];
    const resolveTimes: number[] = [];
    let last: HostReport | undefined;
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      last = await checkHost({ cacheDir });
      checkTimes.push(performance.now() - t);
      t = performance.now();
      const choice = await resolveAccelerator('auto', { cacheDir });
      resolveTimes.push(performance.now() - t);
      expect(choice.accel).toBe('tcg');
    }
    expect(last?.kvm.cached).toBe(true);
    console.log(
      `cached checkHost median ${median(checkTimes).toFixed(1)} ms, resolveAccelerator median ${median(resolveTimes).toFixed(2)} ms`,
    );
    expect(median(checkTimes)).toBeLessThan(CACHED_CALL_LIMIT_MS);
    expect(median(resolveTimes)).toBeLessThan(CACHED_CALL_LIMIT_MS);
  });

  it("resolveAccelerator('kvm') refuses with HOST_UNSUPPORTED and the hint, quickly from the cache", async () => {
    const started = performance.now();
    let caught: unknown;
    try {
      await resolveAccelerator('kvm', { cacheDir });
    } catch (e) {
      caught = e;
    }
    expect(performance.now() - started).toBeLessThan(CACHED_CALL_LIMIT_MS);
    expect(isVirtnodeError(caught, 'HOST_UNSUPPORTED')).toBe(true);
    const err = caught as Error & { hint?: string };
    expect(err.message).toContain('/dev/kvm is present but a test guest did not run under KVM within 3 s');
    expect(err.hint).toBe('use --accel tcg');
    expect(await resolveAccelerator('tcg', { cacheDir })).toEqual({ accel: 'tcg', reason: 'TCG (software emulation) was requested' });
  });

  it('leaves no probe temp dirs behind', async () => {
    const newDirs = async () => (await probeDirs()).filter((d) => !dirsBefore.includes(d));
    expect(await settled(newDirs, [])).toEqual([]);
  });
});
