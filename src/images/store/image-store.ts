import { createHash } from 'node:crypto';
import { accessSync, chmodSync, closeSync, constants, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { VirtnodeError, invalid, noSpaceCause } from '../../lib/errors.ts';
import { validateName } from '../../lib/names.ts';
import type { StatePaths } from '../../lib/paths.ts';
import { isAlive, selfIdentity } from '../../lib/proc.ts';
import { Reverter } from '../../lib/reverter.ts';
import { mapNoSpace, named } from '../../lib/no-space.ts';
import { damagedImageError, imageDamage, imageInfo } from '../../qemu/img.ts';
import { transaction } from '../../store/db.ts';
import type { Db } from '../../store/db.ts';
import { ImageRepository } from '../../store/images.ts';
import type { ImageFormat, ImageRow, ImageVerification } from '../../store/images.ts';
import { type Fetcher, download, discardPartial, metaPath } from '../pull/download.ts';
import { lockPartial } from '../pull/lock.ts';
import { fetchChecksum, parseHttpUrl, urlFileName } from '../pull/http.ts';
import { transferTracker } from '../pull/progress.ts';
import type { DownloadProgress } from '../pull/progress.ts';
import { copyAndHash, decompress, defaultImageName, detectCompression } from './files.ts';
import type { Compression, FileOptions } from './files.ts';
import type { AddressGuard } from '../pull/address-guard.ts';
import { deleteRetiredRootfs, retireRootfs } from '../rootfs.ts';
import { type BootFiles, bootFilesDir, extractBootFiles, readBootFiles } from '../boot/extract.ts';

export type { ImageFormat, ImageVerification } from '../../store/images.ts';

/** A named image and where its (read-only, content-addressed) file lies. */
export interface ImageRecord extends ImageRow {
  path: string;
}

/** What an instance needs of a stored image. */
export interface ResolvedImage {
  path: string;
  format: ImageFormat;
  sha256: string;
  name: string;
  /** The image's own kernel, initramfs and command line, when they were found at import (direct kernel boot). */
  boot?: BootFiles;
}

/**
 * stored: a new file; deduplicated: the content was already stored (under `sharedWith`), only the name is new;
 * already-present: this name already holds exactly this content, nothing changed.
 */
export type StoreOutcome = 'stored' | 'deduplicated' | 'already-present';

export interface StoreResult {
  image: ImageRecord;
  outcome: StoreOutcome;
  sharedWith: string[];
}

export interface PullResult extends StoreResult {
  /** How the download was checked; undefined: not at all (the computed hash is recorded). */
  verifiedBy: ImageVerification | undefined;
  downloadSha256: string;
  bytes: number;
  resumedFrom: number;
}

/**
 * The arguments of a pull, checked before anything is fetched (the CLI checks them too before it sends them to
 * a daemon, so both say the same): the URL, --sha256, --checksums and --name.
 */
export function checkPullArguments(urlText: string, options: { name?: string; sha256?: string; checksumsUrl?: string }): { url: string; sha256: string | undefined } {
  const url = parseHttpUrl('URL', urlText).href;
  let expected: string | undefined;
  if (options.sha256 !== undefined) {
    if (!SHA256_PATTERN.test(options.sha256)) throw invalid('--sha256', `"${options.sha256}" is not a sha256`, 'give 64 hexadecimal digits');
    expected = options.sha256.toLowerCase();
  }
  if (options.checksumsUrl !== undefined) {
    if (expected !== undefined) throw invalid('--checksums', 'give either --sha256 or --checksums, not both');
    parseHttpUrl('--checksums', options.checksumsUrl);
  }
  if (options.name !== undefined) validateName('--name', options.name);
  return { url, sha256: expected };
}

export interface RemoveResult {
  image: ImageRecord;
  fileDeleted: boolean;
  /** Why the file stayed: other names for the same content, instances still using it (--force). */
  keptFor: { names: string[]; instances: string[] };
}

export interface ImportOptions {
  name?: string;
  /** Progress of copying or unpacking the file. */
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface PullOptions {
  name?: string;
  sha256?: string;
  checksumsUrl?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Immediate retries of a transfer cut after some progress (default 3). */
  retries?: number;
  /** How long a transfer may receive nothing before it is cut (default 60 s). */
  stallTimeoutMs?: number;
  /** Checks each host the pull goes to (the image, the checksums file, every redirect). */
  guard?: AddressGuard;
  /** Makes the requests instead of fetch() (see download.ts). */
  fetcher?: Fetcher;
  /**
   * What the download is of, instead of its URL: the partial file is kept under it, so a later pull of the same
   * thing from another URL resumes it (e.g. an image by its digest, from any host of a cluster).
   */
  identity?: string;
  /** Waits this long for another pull of the same thing to finish instead of refusing at once (default 0). */
  lockWaitMs?: number;
}

/** The downloaded bytes are not the ones expected (`--sha256`, `--checksums`); nothing was kept. */
export class ChecksumMismatch extends VirtnodeError {
  readonly expected: string;
  readonly got: string;
  constructor(field: string, message: string, hint: string, expected: string, got: string) {
    super('INVALID', `${field}: ${message}`, { field, hint });
    this.expected = expected;
    this.got = got;
  }
}

const FORMATS: readonly string[] = ['qcow2', 'raw'];
const SHA256_PATTERN = /^[0-9a-fA-F]{64}$/;
const ABANDONED_PARTIAL_AGE_MS = 7 * 24 * 60 * 60_000;

interface Ingested {
  path: string;
  sha256: string;
  format: ImageFormat;
  virtualSize: number;
  /** The image's boot files, read out of it in the scratch directory (see boot/extract.ts). */
  bootDir?: string;
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The image store: files under `<state>/images/<sha256>.<format>`, read-only and never modified (instances
 * put a qcow2 overlay on top), and a name → image table. Identical content is stored once, whatever its names.
 */
export class ImageStore {
  readonly dir: string;
  private readonly db: Db;
  private readonly repo: ImageRepository;

  constructor(paths: StatePaths, db: Db) {
    this.dir = join(paths.root, 'images');
    this.db = db;
    this.repo = new ImageRepository(db);
  }

  private get scratchDir(): string {
    return join(this.dir, '.tmp');
  }

  private get partialDir(): string {
    return join(this.dir, '.partial');
  }

  pathOf(image: Pick<ImageRow, 'sha256' | 'format'>): string {
    return join(this.dir, `${image.sha256}.${image.format}`);
  }

  /** Partial downloads are named by a hash of their URL, so a second pull of the same URL resumes. */
  partialPathOf(url: string): string {
    return join(this.partialDir, createHash('sha256').update(url).digest('hex').slice(0, 32));
  }

  private record(row: ImageRow): ImageRecord {
    return { ...row, path: this.pathOf(row) };
  }

  list(): ImageRecord[] {
    return this.repo.list().map((r) => this.record(r));
  }

  get(name: string): ImageRecord {
    const row = this.repo.get(name);
    if (row === undefined) {
      throw new VirtnodeError('NOT_FOUND', `image ${name} does not exist`, {
        hint: 'see `virtnode image ls`; add one with `virtnode image import FILE` or `virtnode image pull URL`',
      });
    }
    return this.record(row);
  }

  /** A stored image with this content (sha256 of its file), under any of its names; undefined when none. */
  byDigest(sha256: string): ImageRecord | undefined {
    const name = this.repo.namesWithSha256(sha256)[0];
    const row = name === undefined ? undefined : this.repo.get(name);
    return row === undefined || !existsSync(this.pathOf(row)) ? undefined : this.record(row);
  }

  /**
   * A stored image by name, or by the path of its file in the store. Any other file is refused with a hint to
   * import it: instances are made only from stored, read-only, content-addressed images.
   */
  resolve(nameOrPath: string): ResolvedImage {
    const looksLikePath = nameOrPath.includes('/') || nameOrPath.startsWith('.');
    if (!looksLikePath) {
      const image = this.get(nameOrPath);
      return this.withBoot({ path: image.path, format: image.format, sha256: image.sha256, name: image.name });
    }
    const path = isAbsolute(nameOrPath) ? nameOrPath : resolve(nameOrPath);
    const stored = /^([0-9a-f]{64})\.(qcow2|raw)$/.exec(basename(path));
    if (stored !== null && resolve(path, '..') === this.dir) {
      const names = this.repo.namesWithSha256(stored[1]!);
      const row = names[0] === undefined ? undefined : this.repo.get(names[0]);
      if (row !== undefined && row.format === stored[2]) return this.withBoot({ path: this.pathOf(row), format: row.format, sha256: row.sha256, name: row.name });
    }
    let isFile = false;
    try {
      isFile = statSync(path).isFile();
    } catch {
      isFile = false;
    }
    if (!isFile) throw invalid('IMAGE', `${nameOrPath} does not exist`, 'give an image name (see `virtnode image ls`)');
    throw invalid('IMAGE', `${nameOrPath} is a file, not a stored image`, `import it first: virtnode image import ${nameOrPath} --name NAME`);
  }

  private withBoot(image: ResolvedImage): ResolvedImage {
    const boot = readBootFiles(this.dir, image.sha256);
    return boot === undefined ? image : { ...image, boot };
  }

  /** Where the boot files of a newly stored image are read to (nothing when that content already has them). */
  private async withBootFiles(ingested: Ingested, scratch: string, signal: AbortSignal | undefined): Promise<Ingested> {
    if (existsSync(bootFilesDir(this.dir, ingested.sha256))) return ingested;
    const bootDir = join(scratch, 'boot');
    const found = await extractBootFiles({ path: ingested.path, format: ingested.format }, bootDir, scratch, signalOption(signal));
    return found ? { ...ingested, bootDir } : ingested;
  }

  /** Adds a local qcow2 or raw file (or an .xz/.gz of one) under `name` (default: from the file name). */
  /** What an import would read and the name it would store: checked before any work, so bad input starts none. */
  importSource(file: string, givenName: string | undefined): { source: string; name: string } {
    const source = isAbsolute(file) ? file : resolve(file);
    let readable = false;
    let size = 0;
    try {
      const stat = statSync(source);
      readable = stat.isFile();
      size = stat.size;
      accessSync(source, constants.R_OK);
    } catch {
      readable = false;
    }
    const name = this.nameFor(givenName, basename(source));
    if (!readable) throw invalid('FILE', `${file} does not exist or is not a readable file`);
    // An image is never empty; files under /proc and /sys also say size 0 and are no images either.
    if (size === 0) throw invalid('FILE', `${file} is empty`, 'give a qcow2 or raw image (or .xz/.gz of one)');
    return { source, name };
  }

  async import(file: string, options: ImportOptions = {}): Promise<StoreResult> {
    const { source, name } = this.importSource(file, options.name);

    const scratch = await mapNoSpace(`import image ${file}`, this.dir, async () => {
      await this.ensureDirs();
      return this.newScratch('import');
    });
    try {
      return await this.importInto(scratch, source, file, name, options);
    } catch (e) {
      if (options.signal?.aborted === true) {
        throw new VirtnodeError('TIMEOUT', `import of ${file} was interrupted; nothing was stored`, { cause: e });
      }
      throw named(e, `import image ${file}`, this.dir);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private async importInto(scratch: string, source: string, file: string, name: string, options: ImportOptions): Promise<StoreResult> {
    const { signal } = options;
    const tracker = options.onProgress === undefined ? undefined : transferTracker(options.onProgress);
    const fileOptions = { ...signalOption(signal), ...(tracker === undefined ? {} : { onProgress: tracker.update }) };
    const compression = await detectCompression(source);
    let ingested: Ingested;
    let sourceSha256: string;
    if (compression === undefined) {
      await this.inspect(source, 'FILE', file, signal); // refuse early, before copying
      const copy = join(scratch, 'image');
      sourceSha256 = await copyAndHash(source, copy, fileOptions);
      tracker?.finish();
      ingested = await this.ingestPlain(copy, sourceSha256, 'FILE', file, signal);
    } else {
      const unpacked = await this.ingestCompressed(source, compression, scratch, 'FILE', file, fileOptions);
      tracker?.finish();
      sourceSha256 = unpacked.sourceSha256;
      ingested = unpacked;
    }
    ingested = await this.withBootFiles(ingested, scratch, signal);
    return this.commit(name, ingested, { source, sourceSha256, verifiedBy: undefined });
  }

  /**
   * Downloads an image over HTTP(S), resuming an earlier interrupted pull of the same URL, and verifies its
   * sha256 (given, or from a SHA256SUMS file) before it is stored. A mismatch deletes the download and records
   * nothing; an abort keeps the partial file for the next attempt but records nothing.
   */
  async pull(urlText: string, options: PullOptions = {}): Promise<PullResult> {
    const checked = checkPullArguments(urlText, options);
    const url = checked.url;
    let expected = checked.sha256;
    const fileName = urlFileName(new URL(url));
    const name = this.nameFor(options.name, fileName || new URL(url).hostname);
    const existing = this.repo.get(name);
    if (existing !== undefined && expected === undefined && options.checksumsUrl === undefined) throw this.nameTaken(name);

    let verifiedBy: ImageVerification | undefined;
    if (expected !== undefined) verifiedBy = 'sha256';
    else if (options.checksumsUrl !== undefined) {
      expected = await fetchChecksum(options.checksumsUrl, fileName, { ...signalOption(options.signal), ...(options.guard === undefined ? {} : { guard: options.guard }) });
      verifiedBy = 'checksums';
    }
    if (existing !== undefined) {
      if (existing.sourceSha256 === expected || existing.sha256 === expected) {
        return { image: this.record(existing), outcome: 'already-present', sharedWith: [], verifiedBy: existing.verifiedBy, downloadSha256: existing.sourceSha256, bytes: 0, resumedFrom: 0 };
      }
      throw this.nameTaken(name);
    }
    const partial = this.partialPathOf(options.identity ?? url);
    const unlock = await mapNoSpace(`pull image ${url}`, this.dir, async () => {
      await this.ensureDirs();
      return lockPartial(partial, options.identity ?? url, options.lockWaitMs ?? 0);
    });
    try {
      return await this.pullLocked(url, partial, name, expected, verifiedBy, options);
    } catch (e) {
      // A download that filled the disk is not kept for a resume: the space is what the user needs back.
      if (noSpaceCause(e) !== undefined) await discardPartial(partial);
      throw named(e, `pull image ${url}`, this.dir);
    } finally {
      await unlock();
    }
  }

  private async pullLocked(
    url: string,
    partial: string,
    name: string,
    expected: string | undefined,
    verifiedBy: ImageVerification | undefined,
    options: PullOptions,
  ): Promise<PullResult> {
    if (expected !== undefined) {
      // The same bytes were fetched or imported before: name them without downloading again (and drop any
      // half-finished download of this URL).
      const known = this.repo.findBySourceSha256(expected);
      if (known !== undefined && existsSync(this.pathOf(known))) {
        await discardPartial(partial);
        const stored = await this.commit(
          name,
          { path: this.pathOf(known), sha256: known.sha256, format: known.format, virtualSize: known.virtualSize },
          { source: url, sourceSha256: expected, verifiedBy },
        );
        return { ...stored, verifiedBy, downloadSha256: expected, bytes: 0, resumedFrom: 0 };
      }
    }

    const downloadOptions = {
      ...signalOption(options.signal),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.retries === undefined ? {} : { retries: options.retries }),
      ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
      ...(options.guard === undefined ? {} : { guard: options.guard }),
      ...(options.fetcher === undefined ? {} : { fetcher: options.fetcher }),
      ...(options.identity === undefined ? {} : { identity: options.identity }),
    };
    const result = await download(url, partial, downloadOptions);
    if (expected !== undefined && result.sha256 !== expected) {
      await discardPartial(partial);
      throw new ChecksumMismatch(
        verifiedBy === 'checksums' ? '--checksums' : '--sha256',
        `the download of ${url} does not match its checksum: expected sha256 ${expected}, got ${result.sha256}`,
        'the file was corrupted in transit or changed on the server; the download was deleted, check the checksum and pull again',
        expected,
        result.sha256,
      );
    }

    const scratch = await this.newScratch('pull');
    const downloaded = join(scratch, 'download');
    try {
      await rename(partial, downloaded);
      const compression = await detectCompression(downloaded);
      const ingested = await this.withBootFiles(
        compression === undefined
          ? await this.ingestPlain(downloaded, result.sha256, 'URL', url, options.signal)
          : await this.ingestCompressed(downloaded, compression, scratch, 'URL', url, signalOption(options.signal)),
        scratch,
        options.signal,
      );
      const stored = await this.commit(name, ingested, { source: url, sourceSha256: result.sha256, verifiedBy });
      await rm(metaPath(partial), { force: true });
      return { ...stored, verifiedBy, downloadSha256: result.sha256, bytes: result.bytes, resumedFrom: result.resumedFrom };
    } catch (e) {
      if (options.signal?.aborted === true) {
        // Interrupted while unpacking: keep the complete download, so the next pull only checks it.
        await rename(downloaded, partial).catch(() => {});
        throw new VirtnodeError('TIMEOUT', `pull of ${url} was interrupted after the download; nothing was stored`, {
          cause: e,
          hint: 'run the same command again: the download is kept',
        });
      }
      await discardPartial(partial);
      throw e;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /**
   * Removes a name. Refused while instances use the image unless `force`; the file itself is deleted only when
   * no other name and no instance uses it (a forced removal never pulls a disk's backing file from under it).
   */
  remove(name: string, options: { force?: boolean; usersOf: (imagePath: string) => string[] }): RemoveResult {
    const image = this.get(name);
    const instances = options.usersOf(image.path);
    if (instances.length > 0 && options.force !== true) {
      throw new VirtnodeError('CONFLICT', `image ${name} is used by instance${instances.length > 1 ? 's' : ''} ${instances.join(', ')}`, {
        hint: 'delete those instances first, or remove the name anyway with --force (the file stays while instances use it)',
      });
    }
    return transaction(this.db, () => {
      this.repo.delete(name);
      const names = this.repo.namesWithSha256(image.sha256);
      let fileDeleted = false;
      if (names.length === 0 && instances.length === 0) {
        try {
          unlinkSync(image.path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        retireRootfs(this.dir, image.sha256);
        rmSync(bootFilesDir(this.dir, image.sha256), { recursive: true, force: true });
        fileDeleted = true;
      }
      return { image, fileDeleted, keptFor: { names, instances } };
    });
  }

  /** Deletes the unpacked trees `remove` took out of use (asynchronously: a daemon keeps answering meanwhile). */
  deleteRetired(): Promise<void> {
    return deleteRetiredRootfs(this.dir);
  }

  private nameFor(given: string | undefined, fileName: string): string {
    if (given !== undefined) return validateName('--name', given);
    const derived = defaultImageName(fileName);
    try {
      return validateName('--name', derived);
    } catch {
      throw invalid('--name', `cannot make an image name from "${fileName}"`, 'give one with --name (a DNS label: lowercase letters, digits, hyphens)');
    }
  }

  private nameTaken(name: string): VirtnodeError {
    return new VirtnodeError('CONFLICT', `image ${name} already exists`, {
      hint: `choose another name with --name, or remove it first with \`virtnode image rm ${name}\``,
    });
  }

  private async ensureDirs(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await mkdir(this.scratchDir, { recursive: true, mode: 0o700 });
    await mkdir(this.partialDir, { recursive: true, mode: 0o700 });
    await this.removeStaleScratch();
    await this.removeAbandonedPartials();
  }

  /** Partial downloads nobody resumed for a week are deleted (unless a pull holds their lock right now). */
  private async removeAbandonedPartials(): Promise<void> {
    const now = Date.now();
    for (const entry of await readdir(this.partialDir)) {
      if (!/^[0-9a-f]{32}$/.test(entry)) continue;
      const partial = join(this.partialDir, entry);
      let modified: number;
      try {
        modified = statSync(partial).mtimeMs;
      } catch {
        continue;
      }
      if (now - modified < ABANDONED_PARTIAL_AGE_MS || existsSync(`${partial}.lock`)) continue;
      await discardPartial(partial);
    }
  }

  /** A private scratch directory named after this process, so leftovers of a killed one can be recognised. */
  private newScratch(kind: 'import' | 'pull'): Promise<string> {
    const self = selfIdentity();
    return mkdtemp(join(this.scratchDir, `${kind}-${self.pid}-${self.start}-`));
  }

  /** Scratch directories whose process is gone (killed mid-import) are deleted. */
  private async removeStaleScratch(): Promise<void> {
    for (const entry of await readdir(this.scratchDir)) {
      const owner = /^(?:import|pull)-(\d+)-(\d*)-/.exec(entry);
      if (owner === null || isAlive({ pid: Number(owner[1]), start: owner[2]! })) continue;
      await rm(join(this.scratchDir, entry), { recursive: true, force: true });
    }
  }

  /** qemu-img's view of a file; only self-contained, undamaged (qemu-img check) qcow2 and raw images are accepted. */
  private async inspect(path: string, field: string, shown: string, signal: AbortSignal | undefined): Promise<{ format: ImageFormat; virtualSize: number }> {
    const info = await imageInfo(path, signalOption(signal));
    if (!FORMATS.includes(info.format)) {
      throw invalid(field, `${shown} is a ${info.format} image; only qcow2 and raw images can be stored`, `convert it first: qemu-img convert -O qcow2 FILE NEW.qcow2`);
    }
    if (info.backingFile !== undefined) {
      throw invalid(field, `${shown} is a qcow2 image with a backing file (${info.backingFile}); stored images must be self-contained`, 'flatten it first: qemu-img convert -O qcow2 FILE NEW.qcow2');
    }
    if (info.virtualSize <= 0) throw invalid(field, `${shown} is empty`);
    const damage = await imageDamage(path, info.format, signalOption(signal));
    if (damage !== undefined) throw damagedImageError(field, shown, info.format, damage);
    return { format: info.format as ImageFormat, virtualSize: info.virtualSize };
  }

  private async ingestPlain(path: string, sha256: string, field: string, shown: string, signal: AbortSignal | undefined): Promise<Ingested> {
    const info = await this.inspect(path, field, shown, signal);
    return { path, sha256, ...info };
  }

  private async ingestCompressed(
    source: string,
    compression: Compression,
    scratch: string,
    field: string,
    shown: string,
    options: FileOptions,
  ): Promise<Ingested & { sourceSha256: string }> {
    let out: { path: string; sha256: string; sourceSha256: string };
    try {
      out = await decompress(source, compression, scratch, options);
    } catch (e) {
      if (options.signal?.aborted === true) throw e;
      throw invalid(field, `${shown} looks ${compression}-compressed but cannot be decompressed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const info = await this.inspect(out.path, field, `${shown} (decompressed)`, options.signal);
    return { ...out, ...info };
  }

  /** Moves the file into place (unless that content is already stored) and records the name, atomically. */
  private async commit(name: string, ingested: Ingested, origin: { source: string; sourceSha256: string; verifiedBy: ImageVerification | undefined }): Promise<StoreResult> {
    const target = this.pathOf(ingested);
    const reverter = new Reverter();
    try {
      const result = transaction(this.db, (): StoreResult => {
        const existing = this.repo.get(name);
        if (existing !== undefined) {
          if (existing.sha256 === ingested.sha256) return { image: this.record(existing), outcome: 'already-present', sharedWith: [] };
          throw this.nameTaken(name);
        }
        const sharedWith = this.repo.namesWithSha256(ingested.sha256);
        let created = false;
        if (!existsSync(target)) {
          chmodSync(ingested.path, 0o444);
          fsyncFile(ingested.path);
          renameSync(ingested.path, target);
          created = true;
          reverter.add(`remove ${target}`, () => unlinkSync(target));
        }
        const bootTarget = bootFilesDir(this.dir, ingested.sha256);
        if (ingested.bootDir !== undefined && !existsSync(bootTarget)) {
          renameSync(ingested.bootDir, bootTarget);
          reverter.add(`remove ${bootTarget}`, () => rmSync(bootTarget, { recursive: true, force: true }));
        }
        const row = this.repo.insert({
          name,
          sha256: ingested.sha256,
          format: ingested.format,
          virtualSize: ingested.virtualSize,
          fileSize: statSync(target).size,
          source: origin.source,
          sourceSha256: origin.sourceSha256,
          verifiedBy: origin.verifiedBy,
        });
        return { image: this.record(row), outcome: created ? 'stored' : 'deduplicated', sharedWith };
      });
      reverter.success();
      return result;
    } catch (e) {
      await reverter.revert();
      throw e;
    }
  }
}
