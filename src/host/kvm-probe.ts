import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, run } from '../exec/run.ts';
import { VirtnodeError, isVirtnodeError } from '../lib/errors.ts';
import { PROBE_EXIT_STATUS, probeBootSector } from './boot-sector.ts';
import { readCache, writeCache } from './probe-cache.ts';
import { programVersion } from './programs.ts';

/**
 * The functional accelerator probe. A /dev/kvm node proves nothing (on some hosts KVM_CREATE_VM succeeds and
 * guests still never run), so boot a real tiny guest under the accelerator with a deadline and see whether it
 * executes its code: it exits QEMU through isa-debug-exit with a status only a completed run can produce.
 *
 * Measured on the development hosts (QEMU 7.2, SeaBIOS 1.16): the guest finishes in about 0.1 s under TCG, and
 * under their broken KVM in about 5.1 s (SeaBIOS and real-mode code crawl there; real guests never get through
 * early boot). The 3 s deadline separates the two with room on both sides; a working KVM needs well under 1 s.
 */

export type Accel = 'kvm' | 'tcg';
export type ProbeVerdict = 'functional' | 'hangs' | 'fails' | 'absent';

export const QEMU_SYSTEM = 'qemu-system-x86_64';
export const KVM_DEVICE = '/dev/kvm';
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000;
const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';
const PROBE_CACHE_FILE = 'kvm-probe.json';
/** Slack for timer jitter when telling "killed at the deadline" from "killed by something else". */
const DEADLINE_SLACK_MS = 50;

export interface GuestProbe {
  accel: Accel;
  verdict: Exclude<ProbeVerdict, 'absent'>;
  detail: string;
  elapsedMs: number;
  timeoutMs: number;
  /** QEMU's exit status, when it exited by itself. */
  exitStatus?: number;
}

export interface KvmProbe {
  verdict: ProbeVerdict;
  detail: string;
  elapsedMs: number;
  timeoutMs: number;
  /** True when the verdict came from the cache rather than a guest booted by this call. */
  cached: boolean;
  /** When the guest was booted (ISO 8601). */
  probedAt: string;
}

/** The QEMU command line of the probe guest: the default CPU model (`-cpu host` aborts on some broken hosts). */
export function probeArgv(qemuPath: string, accel: Accel, diskPath: string): string[] {
  return [
    qemuPath,
    '-machine', 'pc',
    '-accel', accel,
    '-nodefaults',
    '-no-user-config',
    '-no-reboot',
    '-display', 'none',
    '-m', '16',
    '-drive', `file=${diskPath.replaceAll(',', ',,')},format=raw,if=ide`,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
  ];
}

export function accelLabel(accel: Accel): string {
  return accel === 'kvm' ? 'KVM' : 'TCG';
}

export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** The QEMU stderr line worth showing: the first that is not a warning, else the last one. */
export function qemuErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.find((l) => !/\bwarning:/i.test(l)) ?? lines.at(-1) ?? '';
}

/** Pure: how one probe run ended → verdict. `exitStatus` null means QEMU was killed. */
export function classifyProbe(outcome: {
  accel: Accel;
  exitStatus: number | null;
  stderr: string;
  elapsedMs: number;
  timeoutMs: number;
}): GuestProbe {
  const { accel, exitStatus, elapsedMs, timeoutMs } = outcome;
  const name = accelLabel(accel);
  const base = { accel, elapsedMs, timeoutMs };
  if (exitStatus === PROBE_EXIT_STATUS) {
    return { ...base, exitStatus, verdict: 'functional', detail: `a test guest ran under ${name} and finished in ${elapsedMs} ms` };
  }
  if (exitStatus === null) {
    if (elapsedMs + DEADLINE_SLACK_MS >= timeoutMs) {
      return { ...base, verdict: 'hangs', detail: `a test guest did not run under ${name} within ${formatSeconds(timeoutMs)}` };
    }
    return { ...base, verdict: 'fails', detail: `QEMU was killed after ${elapsedMs} ms: ${qemuErrorLine(outcome.stderr) || 'no message'}` };
  }
  const message = qemuErrorLine(outcome.stderr);
  return {
    ...base,
    exitStatus,
    verdict: 'fails',
    detail:
      message !== ''
        ? `QEMU exited with status ${exitStatus} under ${name}: ${message}`
        : `the test guest ended with status ${exitStatus} instead of ${PROBE_EXIT_STATUS} under ${name}`,
  };
}

const ALL_EXIT_STATUSES = Array.from({ length: 256 }, (_, i) => i);

/**
 * Boots the probe guest once under `accel` and kills it at the deadline. Uses a fresh temp dir, removed
 * afterwards; run() waits for QEMU to be gone before it settles, so nothing is left behind.
 */
export async function runProbeGuest(
  accel: Accel,
  options: { qemuPath?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<GuestProbe> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const dir = await mkdtemp(join(tmpdir(), 'virtnode-accel-probe-'));
  try {
    const disk = join(dir, 'boot.img');
    await writeFile(disk, probeBootSector());
    const argv = probeArgv(options.qemuPath ?? QEMU_SYSTEM, accel, disk);
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    try {
      const result = await run(argv, {
        timeoutMs,
        okCodes: ALL_EXIT_STATUSES,
        diesWithVirtnode: true,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return classifyProbe({ accel, exitStatus: result.code, stderr: result.stderr, elapsedMs: elapsed(), timeoutMs });
    } catch (e) {
      if (options.signal?.aborted === true) throw e;
      if (e instanceof CommandError) {
        return classifyProbe({ accel, exitStatus: e.exitCode, stderr: e.stderr, elapsedMs: elapsed(), timeoutMs });
      }
      if (isVirtnodeError(e)) {
        return { accel, verdict: 'fails', detail: e.message, elapsedMs: elapsed(), timeoutMs };
      }
      throw e;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface CacheKey {
  bootId: string;
  kernelRelease: string;
  qemuVersion: string;
  qemuPath: string;
  device: string;
  timeoutMs: number;
}

interface CacheFile {
  key: CacheKey;
  result: Omit<KvmProbe, 'cached'>;
}

async function readBootId(): Promise<string> {
  try {
    return (await readFile(BOOT_ID_PATH, 'utf8')).trim();
  } catch {
    return '';
  }
}

async function isCharDevice(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isCharacterDevice();
  } catch {
    return false;
  }
}

function sameKey(a: CacheKey, b: CacheKey): boolean {
  return (
    a.bootId === b.bootId &&
    a.kernelRelease === b.kernelRelease &&
    a.qemuVersion === b.qemuVersion &&
    a.qemuPath === b.qemuPath &&
    a.device === b.device &&
    a.timeoutMs === b.timeoutMs
  );
}

/**
 * What the probe looks at. Both default to the real host; tests point them at a stand-in device node and a stub
 * QEMU that finishes, hangs or fails like a working, hanging or broken KVM would.
 */
export interface KvmProbeTarget {
  /** The KVM device node (default /dev/kvm). */
  kvmDevice?: string;
  /** The QEMU that boots the test guest: a name looked up on PATH or a path (default qemu-system-x86_64). */
  qemu?: string;
}

export interface ProbeKvmOptions extends KvmProbeTarget {
  cacheDir: string;
  timeoutMs?: number;
  /** Ignore the cached verdict and boot the test guest again. */
  refresh?: boolean;
  signal?: AbortSignal;
}

/**
 * Does KVM run guests on this host? 'absent' without the device; otherwise boots the probe guest. The slow
 * verdicts ('functional', 'hangs') are cached as JSON in cacheDir, keyed by boot id, kernel release, QEMU
 * version and the deadline, so later calls take milliseconds. 'fails' is not cached: it is quick to reach and
 * often fixed by the user (permissions, a module load) without a reboot.
 */
export async function probeKvm(options: ProbeKvmOptions): Promise<KvmProbe> {
  const device = options.kvmDevice ?? KVM_DEVICE;
  const qemuName = options.qemu ?? QEMU_SYSTEM;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const now = (): string => new Date().toISOString();
  if (!(await isCharDevice(device))) {
    return { verdict: 'absent', detail: `${device} is absent`, elapsedMs: 0, timeoutMs, cached: false, probedAt: now() };
  }
  const signalOption = options.signal === undefined ? {} : { signal: options.signal };
  const qemu = await programVersion(qemuName, { cacheDir: options.cacheDir, ...signalOption });
  if (qemu.state !== 'ok') {
    const detail =
      qemu.state === 'missing'
        ? `${qemuName} is not installed (apt-get install qemu-system-x86)`
        : `${qemuName} does not run: ${qemu.detail}`;
    return { verdict: 'fails', detail, elapsedMs: 0, timeoutMs, cached: false, probedAt: now() };
  }

  const bootId = await readBootId();
  const key: CacheKey = { bootId, kernelRelease: release(), qemuVersion: qemu.version, qemuPath: qemu.path, device, timeoutMs };
  if (options.refresh !== true && bootId !== '') {
    const cached = await readCache<CacheFile>(options.cacheDir, PROBE_CACHE_FILE);
    if (cached?.key !== undefined && cached.result !== undefined && sameKey(cached.key, key)) {
      return { ...cached.result, cached: true };
    }
  }

  if (device !== KVM_DEVICE && options.qemu === undefined) {
    // A real QEMU always opens /dev/kvm: a probe of another node is honest only with a stand-in QEMU for it.
    throw new VirtnodeError('INVALID', `cannot boot a test guest on ${device}: QEMU only uses ${KVM_DEVICE}`);
  }
  const probedAt = now();
  const guest = await runProbeGuest('kvm', { qemuPath: qemu.path, timeoutMs, ...signalOption });
  const result: Omit<KvmProbe, 'cached'> = {
    verdict: guest.verdict,
    detail: guest.detail,
    elapsedMs: guest.elapsedMs,
    timeoutMs,
    probedAt,
  };
  if (guest.verdict !== 'fails' && bootId !== '') {
    await writeCache(options.cacheDir, PROBE_CACHE_FILE, { key, result } satisfies CacheFile);
  }
  return { ...result, cached: false };
}
