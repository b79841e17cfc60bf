import type { ImageView } from '../api/views.ts';
import type { ApiClient } from './http.ts';
import { followOperation, type PhaseListener } from './operations.ts';

/** Where progress lines go (stderr): on a terminal a local transfer redraws one line, elsewhere it prints a line each 10%. */
export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** An image stored by import, pull or build: `outcome` says whether it was new, shared or already there. */
export interface StoredImage {
  image: ImageView;
  outcome: 'stored' | 'deduplicated' | 'already-present';
  sharedWith: string[];
}

export interface PulledImage extends StoredImage {
  verifiedBy: string | null;
  downloadSha256: string;
}

export interface BuiltImage extends StoredImage {
  cached: boolean;
  recipeKey: string;
  /** The built file (on the daemon's host). */
  path: string;
}

export interface RemovedImage {
  image: ImageView;
  fileDeleted: boolean;
  keptFor: { names: string[]; instances: string[] };
}

export interface PullRequest {
  url: string;
  name?: string;
  sha256?: string;
  checksumsUrl?: string;
}

export interface BuildRequest {
  recipe: string;
  name?: string;
  size?: string;
  packages?: string[];
}

/**
 * The image store (`virtnode image ...`), in this process or through the daemon: both return the same views. A
 * file to import is a path on the host that does the work (the daemon's, over --remote).
 */
export interface ImageApi {
  readonly via: 'local' | 'daemon';
  list(): Promise<ImageView[]>;
  get(name: string): Promise<ImageView>;
  import(file: string, options: { name?: string; progress?: ProgressSink; signal?: AbortSignal }): Promise<StoredImage>;
  pull(request: PullRequest, options: { progress?: ProgressSink; signal?: AbortSignal }): Promise<PulledImage>;
  /** onPhase: the build's phases (debootstrap, configure, ...), with the time since the build began. */
  build(request: BuildRequest, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<BuiltImage>;
  remove(name: string, options: { force?: boolean }): Promise<RemovedImage>;
}

const enc = encodeURIComponent;

/**
 * Prints an operation's transfer entries (label, line): off a terminal exactly as a local transfer prints them;
 * on a terminal redrawn on one line (the daemon sends a line each 10%, not every 100 ms).
 */
export function progressLines(progress: ProgressSink | undefined): PhaseListener | undefined {
  if (progress === undefined) return undefined;
  if (progress.isTTY !== true) return (phase, detail) => progress.write(`${phase} ${detail}\n`);
  return (phase, detail) => progress.write(`\r\x1b[K${phase} ${detail}${/ done$/.test(detail) ? '\n' : ''}`);
}

const IMAGE_VIEW_ORDER: ReadonlyArray<keyof ImageView> = ['name', 'format', 'sha256', 'virtualSize', 'fileSize', 'path', 'source', 'sourceSha256', 'verifiedBy', 'createdAt'];

/** The view with its fields in the documented order (as imageView builds it). */
export function orderedImageView(view: ImageView): ImageView {
  const ordered: Record<string, unknown> = {};
  for (const key of IMAGE_VIEW_ORDER) if (view[key] !== undefined) ordered[key] = view[key];
  return ordered as unknown as ImageView;
}

function stored<T extends StoredImage>(result: T): T {
  return { ...result, image: orderedImageView(result.image) };
}

/** The image API over HTTP (UNIX socket or HTTPS). */
export class RemoteImages implements ImageApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(): Promise<ImageView[]> {
    return (await this.client.request<ImageView[]>('GET', '/images')).body.map(orderedImageView);
  }

  async get(name: string): Promise<ImageView> {
    return orderedImageView((await this.client.request<ImageView>('GET', `/images/${enc(name)}`)).body);
  }

  async import(file: string, options: { name?: string; progress?: ProgressSink; signal?: AbortSignal }): Promise<StoredImage> {
    const body = { file, ...(options.name === undefined ? {} : { name: options.name }) };
    return stored((await followOperation(this.client, 'POST', '/images/import', body, progressLines(options.progress), signalOf(options))) as StoredImage);
  }

  async pull(request: PullRequest, options: { progress?: ProgressSink; signal?: AbortSignal }): Promise<PulledImage> {
    return stored((await followOperation(this.client, 'POST', '/images/pull', request, progressLines(options.progress), signalOf(options))) as PulledImage);
  }

  async build(request: BuildRequest, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<BuiltImage> {
    return stored((await followOperation(this.client, 'POST', '/images/build', request, options.onPhase, signalOf(options))) as BuiltImage);
  }

  async remove(name: string, options: { force?: boolean }): Promise<RemovedImage> {
    const removed = (await this.client.request<RemovedImage>('DELETE', `/images/${enc(name)}${options.force ? '?force=true' : ''}`)).body;
    return { image: orderedImageView(removed.image), fileDeleted: removed.fileDeleted, keptFor: { names: removed.keptFor.names, instances: removed.keptFor.instances } };
  }
}

export function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}
