import { chmod, mkdir, mkdtemp, rm, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { run } from '../exec/run.ts';
import { VirtnodeError, isVirtnodeError } from '../lib/errors.ts';
import { withSignal } from '../lib/signal.ts';

/** The files of a NoCloud seed; cloud-init reads them from a volume labelled `cidata`/`CIDATA`. */
export interface SeedFiles {
  'meta-data': string;
  'user-data': string;
  'network-config'?: string;
  'vendor-data'?: string;
}

export type SeedFormat = 'iso' | 'vfat';

export interface BuildSeedOptions {
  format: SeedFormat;
  signal?: AbortSignal;
}

const SEED_FILE_NAMES = ['meta-data', 'user-data', 'network-config', 'vendor-data'] as const;
const SEED_TOOL_TIMEOUT_MS = 30_000;
/** Smallest FAT image mkfs.vfat makes comfortably; grown to fit large user-data. */
const VFAT_MIN_SIZE_KIB = 1024;
const SECRET_FILE_MODE = 0o600;

/**
 * Writes a NoCloud seed to `outPath` (ISO9660 + Joliet + Rock Ridge, volume id `cidata`, or a FAT image labelled
 * `CIDATA`). user-data may hold secrets: files are staged 0600 in a private temp dir that is removed afterwards,
 * and the seed itself is created 0600. The seed appears at `outPath` only when complete (written next to it,
 * then renamed).
 */
export async function buildSeed(outPath: string, files: SeedFiles, options: BuildSeedOptions): Promise<void> {
  const { format, signal } = options;
  if (format !== 'iso' && format !== 'vfat') {
    throw new VirtnodeError('INVALID', `seed format must be iso or vfat, not ${String(format)}`, { field: 'format' });
  }
  await buildPrivateVolume(outPath, 'virtnode-seed-', signal, async (stage, partial) => {
    const names: string[] = [];
    let totalBytes = 0;
    for (const name of SEED_FILE_NAMES) {
      const content = files[name];
      if (content === undefined) continue;
      await writeFile(join(stage, name), content, { mode: SECRET_FILE_MODE });
      names.push(name);
      totalBytes += Buffer.byteLength(content);
    }
    if (format === 'iso') await buildIso(partial, 'cidata', names.map((n) => join(stage, n)), signal);
    else await buildVfat(partial, stage, names, totalBytes, signal);
  });
}

/**
 * Writes an OpenStack config drive to `outPath`: an ISO9660 volume labelled `config-2` holding `files` (paths
 * relative to the drive's root, e.g. `openstack/latest/meta_data.json`; see config-drive.ts). Private and atomic
 * like buildSeed.
 */
export async function buildConfigDrive(outPath: string, files: Record<string, string>, options: { signal?: AbortSignal } = {}): Promise<void> {
  const { signal } = options;
  await buildPrivateVolume(outPath, 'virtnode-configdrive-', signal, async (stage, partial) => {
    const root = join(stage, 'root');
    for (const [path, content] of Object.entries(files)) {
      if (path.startsWith('/') || path.split('/').includes('..')) throw new VirtnodeError('INVALID', `config drive path ${path} is not relative`, { field: 'files' });
      await mkdir(dirname(join(root, path)), { recursive: true, mode: 0o700 });
      await writeFile(join(root, path), content, { mode: SECRET_FILE_MODE });
    }
    await buildIso(partial, 'config-2', [root], signal);
  });
}

/**
 * The part the seed and the config drive share: `fill` stages the files (secrets, so 0600) in a private temp dir,
 * removed afterwards, and writes the volume to `partial` next to `outPath`; only a complete volume is renamed
 * into place, 0600.
 */
async function buildPrivateVolume(
  outPath: string,
  stagePrefix: string,
  signal: AbortSignal | undefined,
  fill: (stage: string, partial: string) => Promise<void>,
): Promise<void> {
  signal?.throwIfAborted();
  const stage = await mkdtemp(join(tmpdir(), stagePrefix));
  const partial = join(dirname(outPath), `.${basename(outPath)}.partial-${process.pid}`);
  try {
    await chmod(stage, 0o700);
    await rm(partial, { force: true });
    await fill(stage, partial);
    await chmod(partial, SECRET_FILE_MODE);
    await rename(partial, outPath);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/** `sources`: files, or a directory whose contents become the volume's root. */
async function buildIso(out: string, volid: string, sources: string[], signal: AbortSignal | undefined): Promise<void> {
  const mkisofsArgs = ['-output', out, '-volid', volid, '-joliet', '-rock', ...sources];
  // Create the output 0600 before the tool writes into it, so secrets are never world-readable.
  await writeFile(out, '', { mode: SECRET_FILE_MODE });
  // genisoimage first: it takes some 20 ms, where xorriso always waits 100 ms more for its writer to finish.
  try {
    await run(['genisoimage', '-quiet', ...mkisofsArgs], withSignal({ timeoutMs: SEED_TOOL_TIMEOUT_MS }, signal));
  } catch (error) {
    if (!isVirtnodeError(error, 'MISSING_PROGRAM')) throw error;
    await run(['xorriso', '-as', 'mkisofs', ...mkisofsArgs], withSignal({ timeoutMs: SEED_TOOL_TIMEOUT_MS }, signal));
  }
}

async function buildVfat(
  out: string,
  stage: string,
  names: string[],
  totalBytes: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  // FAT12/16 overhead plus one cluster per file; double the payload leaves room for cluster rounding.
  const sizeKiB = Math.max(VFAT_MIN_SIZE_KIB, Math.ceil((totalBytes * 2) / 1024) + 512);
  // mkfs.vfat -C refuses an existing file; the image is still empty when chmod makes it private.
  await run(['mkfs.vfat', '-n', 'CIDATA', '-C', out, String(sizeKiB)], withSignal({ timeoutMs: SEED_TOOL_TIMEOUT_MS }, signal));
  await chmod(out, SECRET_FILE_MODE);
  await run(
    ['mcopy', '-i', out, '-o', ...names.map((n) => join(stage, n)), '::/'],
    withSignal({ timeoutMs: SEED_TOOL_TIMEOUT_MS, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } }, signal),
  );
}
