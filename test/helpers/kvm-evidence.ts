/**
 * What KVM really does on the machine running the tests, found out by the test itself rather than assumed
 * (HOST-FACTS.md: ours have a /dev/kvm that hangs guests, or none; users usually have one that works). The
 * host-check tests derive what the product must say from this, so they pass on every kind of host.
 *
 * The evidence: is /dev/kvm a character device, does it open read/write, and does the probe guest (the product's
 * boot sector and QEMU command line) exit with the probe's status under KVM within the probe's deadline. QEMU is
 * started and timed here directly, not through the probe code under test.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBE_EXIT_STATUS, probeBootSector } from '../../src/host/boot-sector.ts';
import type { CheckStatus } from '../../src/host/checks.ts';
import { DEFAULT_PROBE_TIMEOUT_MS, KVM_DEVICE, QEMU_SYSTEM, formatSeconds, probeArgv } from '../../src/host/kvm-probe.ts';
import type { Accel, ProbeVerdict } from '../../src/host/kvm-probe.ts';

export interface KvmEvidence {
  /** The verdict the product's probe must reach on this machine. */
  verdict: ProbeVerdict;
  /** What was seen, for failure messages and the test log. */
  seen: string;
}

function openError(path: string): string | undefined {
  try {
    closeSync(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Boots the probe guest under KVM once with the probe's deadline: its exit status, or null when it was killed. */
function bootUnderKvm(timeoutMs: number): Promise<{ status: number | null; elapsedMs: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-kvm-evidence-'));
  const disk = join(dir, 'boot.img');
  writeFileSync(disk, probeBootSector());
  const [program, ...args] = probeArgv(QEMU_SYSTEM, 'kvm', disk);
  const started = performance.now();
  return new Promise<{ status: number | null; elapsedMs: number; stderr: string }>((resolve, reject) => {
    const child = spawn(program!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code, elapsedMs: Math.round(performance.now() - started), stderr: stderr.trim() });
    });
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function gather(): Promise<KvmEvidence> {
  let isCharDevice = false;
  try {
    isCharDevice = statSync(KVM_DEVICE).isCharacterDevice();
  } catch {
    // absent
  }
  if (!isCharDevice) return { verdict: 'absent', seen: `${KVM_DEVICE} is not a character device` };
  const denied = openError(KVM_DEVICE);
  if (denied !== undefined) return { verdict: 'fails', seen: `${KVM_DEVICE} does not open read/write (${denied})` };
  const boot = await bootUnderKvm(DEFAULT_PROBE_TIMEOUT_MS);
  if (boot.status === PROBE_EXIT_STATUS) {
    return { verdict: 'functional', seen: `the probe guest finished under KVM in ${boot.elapsedMs} ms` };
  }
  if (boot.status === null) {
    return { verdict: 'hangs', seen: `the probe guest was still running under KVM after ${boot.elapsedMs} ms` };
  }
  return { verdict: 'fails', seen: `QEMU exited with ${boot.status} under KVM after ${boot.elapsedMs} ms: ${boot.stderr}` };
}

let memo: Promise<KvmEvidence> | undefined;

/** This machine's KVM evidence, gathered once per test file (a hanging KVM costs one probe deadline). */
export function kvmEvidence(): Promise<KvmEvidence> {
  memo ??= gather();
  return memo;
}

export interface KvmExpectation {
  /** Status of the `kvm.device` and `kvm.access` checks. */
  device: CheckStatus;
  access: CheckStatus;
  functional: CheckStatus;
  /** The `kvm.functional` detail (a cached verdict adds its note before the TCG clause). */
  functionalDetail: RegExp;
  accel: Accel;
  /** The accelerator's reason, as `host check` prints it after `Accelerator: <accel> (`. */
  reason: RegExp;
  /** resolveAccelerator('kvm') refuses (HOST_UNSUPPORTED) unless KVM runs guests. */
  kvmRequestRefused: boolean;
}

const CACHED = String.raw`(?: \(cached verdict from [^)]+\))?`;
const TCG_FALLBACK = String.raw`using TCG \(software emulation, slower\)`;

/**
 * What host check says for each verdict with the default deadline. The accelerator's reason names /dev/kvm (the
 * only node QEMU uses) even when a test points the probe at a stand-in node.
 */
export function kvmExpectation(verdict: ProbeVerdict, options: { deviceOpens?: boolean } = {}): KvmExpectation {
  const within = formatSeconds(DEFAULT_PROBE_TIMEOUT_MS).replace('.', String.raw`\.`);
  switch (verdict) {
    case 'absent':
      return {
        device: 'WARN',
        access: 'WARN',
        functional: 'WARN',
        functionalDetail: /^not checked: \/dev\/kvm is absent; TCG will be used$/,
        accel: 'tcg',
        reason: new RegExp(`^/dev/kvm is absent; ${TCG_FALLBACK}$`),
        kvmRequestRefused: true,
      };
    case 'hangs':
      return {
        device: 'PASS',
        access: 'PASS',
        functional: 'WARN',
        functionalDetail: new RegExp(
          `^KVM is present but does not run guests: a test guest did not run under KVM within ${within}${CACHED}; TCG \\(software emulation, slower\\) will be used$`,
        ),
        accel: 'tcg',
        reason: new RegExp(`^/dev/kvm is present but a test guest did not run under KVM within ${within}; ${TCG_FALLBACK}$`),
        kvmRequestRefused: true,
      };
    case 'functional':
      return {
        device: 'PASS',
        access: 'PASS',
        functional: 'PASS',
        functionalDetail: new RegExp(`^a test guest ran under KVM and finished in \\d+ ms${CACHED}$`),
        accel: 'kvm',
        reason: /^a test guest ran under KVM in \d+ ms; using KVM \(hardware virtualization\)$/,
        kvmRequestRefused: false,
      };
    case 'fails':
      return {
        device: 'PASS',
        access: options.deviceOpens === false ? 'WARN' : 'PASS',
        functional: 'WARN',
        functionalDetail: /^KVM is present but QEMU cannot use it: .+; TCG \(software emulation, slower\) will be used$/,
        accel: 'tcg',
        reason: new RegExp(`^/dev/kvm is present but QEMU could not run a guest with it \\(.+\\); ${TCG_FALLBACK}$`),
        kvmRequestRefused: true,
      };
  }
}

/** True when /dev/kvm is a character device that opens read/write (the `kvm.access` check's evidence). */
export function kvmDeviceOpens(): boolean {
  try {
    return statSync(KVM_DEVICE).isCharacterDevice() && openError(KVM_DEVICE) === undefined;
  } catch {
    return false;
  }
}
