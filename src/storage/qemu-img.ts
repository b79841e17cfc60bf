/**
 * qemu-img operations for storage (pools, volumes, snapshots, clones): one function per job, JSON output parsed
 * into small types. Files held open by a running QEMU are only inspected (`-U`), never written.
 */
import { run } from '../exec/run.ts';
import type { DiskFormat } from '../instances/model.ts';
import { convertPercent } from '../qemu/img.ts';

const QEMU_IMG_TIMEOUT_MS = 120_000;
/** Copies (convert, import, export, commit, rebase) take as long as the data takes. */
const QEMU_IMG_COPY_TIMEOUT_MS = 60 * 60_000;

interface RawInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  snapshots?: Array<{ id: string; name: string; 'vm-state-size': number; 'date-sec': number; 'date-nsec': number; 'vm-clock-sec': number }>;
  'format-specific'?: { data?: { corrupt?: boolean } };
}

export interface InternalSnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  date: string;
}

export interface ChainLink {
  path: string;
  format: string;
  virtualSize: number;
  /** Bytes allocated on the host for this file alone. */
  allocation: number;
  /** The backing file as resolved by qemu-img (absolute), if any. */
  backing: string | undefined;
  snapshots: InternalSnapshotInfo[];
}

function toLink(info: RawInfo): ChainLink {
  return {
    path: info.filename,
    format: info.format,
    virtualSize: info['virtual-size'],
    allocation: info['actual-size'] ?? 0,
    backing: info['full-backing-filename'] ?? info['backing-filename'],
    snapshots: (info.snapshots ?? []).map((s) => ({
      id: s.id,
      name: s.name,
      vmStateSize: s['vm-state-size'],
      date: new Date(s['date-sec'] * 1000).toISOString(),
    })),
  };
}

function opts(signal: AbortSignal | undefined, timeoutMs = QEMU_IMG_TIMEOUT_MS): { timeoutMs: number; signal?: AbortSignal } {
  return signal === undefined ? { timeoutMs } : { timeoutMs, signal };
}

/**
 * `-f FORMAT` when the format is known: probed, a raw image whose guest wrote a qcow2 header would be read as
 * qcow2, with a backing file of the guest's choosing on the host.
 */
const formatArgs = (format: string | undefined): string[] => (format === undefined ? [] : ['-f', format]);

/** The image and every backing file under it, top first (`qemu-img info --backing-chain --output=json`). */
export async function backingChain(path: string, options: { signal?: AbortSignal; format?: string } = {}): Promise<ChainLink[]> {
  const { stdout } = await run(['qemu-img', 'info', '-U', ...formatArgs(options.format), '--backing-chain', '--output=json', path], opts(options.signal));
  return (JSON.parse(stdout) as RawInfo[]).map(toLink);
}

/** One image, without its backing chain. */
export async function imageLink(path: string, options: { signal?: AbortSignal; format?: string } = {}): Promise<ChainLink> {
  const { stdout } = await run(['qemu-img', 'info', '-U', ...formatArgs(options.format), '--output=json', path], opts(options.signal));
  return toLink(JSON.parse(stdout) as RawInfo);
}

/**
 * A new qcow2 overlay on `backing` (constant time: nothing is copied). `virtualSize` given means the backing file
 * is not opened (`-u`), so this also works while a running QEMU holds it.
 */
export async function createOverlay(
  path: string,
  backing: { path: string; format: DiskFormat | string },
  options: { virtualSize?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', backing.path, '-F', backing.format];
  if (options.virtualSize !== undefined) argv.push('-u', path, String(options.virtualSize));
  else argv.push(path);
  await run(argv, opts(options.signal));
}

export async function createVolumeImage(
  path: string,
  options: { format: DiskFormat; sizeBytes: number; preallocate: boolean; signal?: AbortSignal },
): Promise<void> {
  const argv = ['qemu-img', 'create', '-q', '-f', options.format];
  // falloc reserves the space without writing it (fast); qcow2 also preallocates its metadata.
  if (options.preallocate) argv.push('-o', 'preallocation=falloc');
  argv.push(path, String(options.sizeBytes));
  await run(argv, opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS));
}

export async function resizeImage(path: string, format: string, sizeBytes: number, options: { shrink: boolean; signal?: AbortSignal }): Promise<void> {
  const argv = ['qemu-img', 'resize', '-q', '-f', format];
  if (options.shrink) argv.push('--shrink');
  argv.push(path, String(sizeBytes));
  await run(argv, opts(options.signal));
}

/** Progress of a copy: bytes done of the source's virtual size. */
export type CopyProgress = (bytes: number, totalBytes: number) => void;

/** Copies an image into a new file of `format` (all backing files flattened into it), reporting progress. */
export async function convertImage(
  source: string,
  target: string,
  format: DiskFormat,
  options: { sourceFormat?: string; signal?: AbortSignal; onProgress?: CopyProgress } = {},
): Promise<void> {
  const { onProgress } = options;
  const total = onProgress === undefined ? 0 : (await imageLink(source, { ...(options.signal === undefined ? {} : { signal: options.signal }), ...(options.sourceFormat === undefined ? {} : { format: options.sourceFormat }) })).virtualSize;
  const argv = ['qemu-img', 'convert', onProgress === undefined ? '-q' : '-p'];
  if (options.sourceFormat !== undefined) argv.push('-f', options.sourceFormat);
  argv.push('-O', format, source, target);
  await run(argv, {
    ...opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS),
    ...(onProgress === undefined
      ? {}
      : {
          onStdout: (chunk: string) => {
            const percent = convertPercent(chunk);
            if (percent !== undefined) onProgress(Math.round((percent / 100) * total), total);
          },
        }),
  });
  onProgress?.(total, total);
}

export interface CheckResult {
  clean: boolean;
  /** qemu-img check's exit code: 0 clean, 1 check failed, 2 corruptions, 3 leaked clusters only. */
  exitCode: number;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  /** Formats without consistency checks (raw) report `supported: false`. */
  supported: boolean;
  raw: Record<string, unknown>;
}

/** `qemu-img check --output=json`; leaks are harmless (space only), corruptions are not. */
export async function checkImage(path: string, format: string, options: { signal?: AbortSignal } = {}): Promise<CheckResult> {
  if (format === 'raw') return { clean: true, exitCode: 0, corruptions: 0, leaks: 0, checkErrors: 0, supported: false, raw: {} };
  const result = await run(['qemu-img', 'check', '-U', '-f', format, '--output=json', path], {
    ...opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS),
    okCodes: [0, 1, 2, 3],
  });
  const raw = (result.stdout.trim() === '' ? {} : JSON.parse(result.stdout)) as Record<string, unknown>;
  const count = (key: string) => (typeof raw[key] === 'number' ? (raw[key] as number) : 0);
  return {
    clean: result.code === 0,
    exitCode: result.code,
    corruptions: count('corruptions'),
    leaks: count('leaks'),
    checkErrors: count('check-errors'),
    supported: true,
    raw,
  };
}

/** Internal qcow2 snapshots of an image that no QEMU has open. */
export async function internalSnapshot(
  action: 'create' | 'apply' | 'delete',
  path: string,
  name: string,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const flag = { create: '-c', apply: '-a', delete: '-d' }[action];
  await run(['qemu-img', 'snapshot', '-q', flag, name, path], opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS));
}

/** Writes the data of `top` into its backing file (`qemu-img commit -d`: top is left as it was). */
export async function commitImage(top: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  await run(['qemu-img', 'commit', '-q', '-d', top], opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS));
}

/**
 * Points `path` at a new backing file. `safe` copies whatever differs between the old and the new backing into
 * `path` first; unsafe (`-u`) only rewrites the header, for when both backings hold the same data.
 */
export async function rebaseImage(
  path: string,
  backing: { path: string; format: string } | undefined,
  options: { safe: boolean; signal?: AbortSignal },
): Promise<void> {
  const argv = ['qemu-img', 'rebase', '-q', '-f', 'qcow2'];
  if (!options.safe) argv.push('-u');
  if (backing === undefined) argv.push('-b', '');
  else argv.push('-b', backing.path, '-F', backing.format);
  argv.push(path);
  await run(argv, opts(options.signal, QEMU_IMG_COPY_TIMEOUT_MS));
}
