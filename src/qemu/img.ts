import { run } from '../exec/run.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { withSignal } from '../lib/signal.ts';
import type { DiskFormat } from '../instances/model.ts';

const QEMU_IMG_TIMEOUT_MS = 120_000;
/** A check reads every metadata table: as long as the image is large. */
const QEMU_IMG_CHECK_TIMEOUT_MS = 60 * 60_000;

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number | undefined;
  backingFile: string | undefined;
}

/**
 * `qemu-img info --output=json`; `-U` so an image held open by a running QEMU can still be inspected. Give the
 * `format` whenever virtnode knows it: probed, a raw disk whose guest wrote a qcow2 header reads as that qcow2.
 */
export async function imageInfo(path: string, options: { signal?: AbortSignal; format?: DiskFormat } = {}): Promise<ImageInfo> {
  const { format, ...runOptions } = options;
  const formatArgs = format === undefined ? [] : ['-f', format];
  const { stdout } = await run(['qemu-img', 'info', '-U', ...formatArgs, '--output=json', path], { timeoutMs: QEMU_IMG_TIMEOUT_MS, ...runOptions });
  const info = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size'?: number; 'backing-filename'?: string };
  return { format: info.format, virtualSize: info['virtual-size'], actualSize: info['actual-size'], backingFile: info['backing-filename'] };
}

export async function createImage(
  path: string,
  options: { format: DiskFormat; sizeBytes?: number; backing?: { path: string; format: DiskFormat }; signal?: AbortSignal },
): Promise<void> {
  const argv = ['qemu-img', 'create', '-q', '-f', options.format];
  if (options.backing !== undefined) argv.push('-b', options.backing.path, '-F', options.backing.format);
  argv.push(path);
  if (options.sizeBytes !== undefined) argv.push(String(options.sizeBytes));
  else if (options.backing === undefined) throw new VirtnodeError('INTERNAL', 'createImage needs a size or a backing image');
  await run(argv, withSignal({ timeoutMs: QEMU_IMG_TIMEOUT_MS }, options.signal));
}

/** The last "(45.01/100%)" in output of `qemu-img convert -p` (redrawn with \r), as a percentage. */
export function convertPercent(text: string): number | undefined {
  const last = [...text.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)].at(-1)?.[1];
  return last === undefined ? undefined : Number(last);
}

/** Formats `qemu-img check` can check; others (raw) have no metadata to be damaged. */
const CHECKED_FORMATS = new Set(['qcow2', 'qed', 'vdi', 'vhdx', 'vmdk', 'parallels']);

export interface ImageDamage {
  corruptions: number;
  checkErrors: number;
  /** qemu-img check's first finding, as it printed it ("ERROR l2_offset=...: L1 entry corrupted"). */
  finding: string;
}

/**
 * What `qemu-img check` finds wrong in an image to be imported, or undefined when it is sound. Leaked clusters
 * alone (exit 3) count as sound: they only waste space in the source, and a copy by `qemu-img convert` does
 * not carry them.
 */
export async function imageDamage(path: string, format: string, options: { signal?: AbortSignal } = {}): Promise<ImageDamage | undefined> {
  if (!CHECKED_FORMATS.has(format)) return undefined;
  const result = await run(['qemu-img', 'check', '-f', format, '--output=json', path], { ...withSignal({ timeoutMs: QEMU_IMG_CHECK_TIMEOUT_MS }, options.signal), okCodes: [0, 1, 2, 3] });
  if (result.code === 0 || result.code === 3) return undefined;
  let report: { corruptions?: number; 'check-errors'?: number } = {};
  try {
    report = JSON.parse(result.stdout) as typeof report;
  } catch {
    /* exit 1 (the check itself failed) may print no report */
  }
  const finding = result.stderr.split('\n').find((l) => /^(ERROR|qemu-img:)/.test(l.trim()))?.trim() ?? result.stderr.trim().split('\n')[0] ?? '';
  return { corruptions: report.corruptions ?? 0, checkErrors: report['check-errors'] ?? 0, finding };
}

/** The refusal of a damaged image, naming what `qemu-img check` found. */
export function damagedImageError(field: string, shown: string, format: string, damage: ImageDamage): VirtnodeError {
  const counts = [damage.corruptions > 0 ? `${damage.corruptions} corruption${damage.corruptions === 1 ? '' : 's'}` : '', damage.checkErrors > 0 ? `${damage.checkErrors} check error${damage.checkErrors === 1 ? '' : 's'}` : '']
    .filter(Boolean)
    .join(' and ');
  return new VirtnodeError('INVALID', `${field}: ${shown} is a damaged ${format} image: qemu-img check found ${counts || 'errors'}${damage.finding === '' ? '' : ` (${damage.finding})`}`, {
    field,
    hint: `nothing was imported; run qemu-img check ${shown} to see every finding, and import a sound copy (qemu-img check -r all repairs a copy, possibly losing data)`,
  });
}
