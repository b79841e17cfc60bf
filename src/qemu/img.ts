import { run } from '../exec/run.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { withSignal } from '../lib/signal.ts';
import type { DiskFormat } from '../instances/model.ts';

const QEMU_IMG_TIMEOUT_MS = 120_000;

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
