/**
 * Images across the hosts of a cluster. Each host publishes the digests it holds (src/cluster/image-index.ts) and
 * serves their bytes on its cluster API (`GET /v1/images/<sha256>`, client certificate, HTTP Range). A launch
 * carries the image's sha256 (the launching host fills it in from its store or the cluster's index); the host that
 * runs the instance, lacking the image, fetches it from a host that holds it before anything else: resumable,
 * verified by digest, and stored under the same name through the image store's pull (temporary file, atomic).
 */
import type { PeerFileRoute } from '../cluster/peer-http.ts';
import type { ClusterService } from '../cluster/service.ts';
import type { DownloadProgress } from '../images/pull/progress.ts';
import type { ImageStore } from '../images/store/index.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { clusterOf } from './cluster-of.ts';
import type { AppCore } from './context.ts';
import type { OperationContext } from './operations.ts';
import { transferProgress } from './transfer-progress.ts';

/** Where a host's cluster API serves image bytes by digest. */
export const IMAGES_PEER_PREFIX = '/v1/images/';
/** A second launch of the same missing image waits this long for the first one's fetch. */
const FETCH_LOCK_WAIT_MS = 60 * 60_000;

const short = (sha256: string) => sha256.slice(0, 12);
const MIB = 1024 * 1024;

/** What this host's store holds, one entry per content. */
function heldImages(store: ImageStore) {
  const by = new Map<string, { sha256: string; names: string[]; format: string; fileSize: number }>();
  for (const i of store.list()) {
    const e = by.get(i.sha256);
    if (e === undefined) by.set(i.sha256, { sha256: i.sha256, names: [i.name], format: i.format, fileSize: i.fileSize });
    else e.names.push(i.name);
  }
  return [...by.values()];
}

/**
 * Tells the cluster what this host's image store holds now (after an import, pull, build or removal, and when
 * membership comes up). A standalone host does nothing; etcd not answering is logged, not an error of the change
 * (the next change or daemon start publishes again).
 */
export async function publishHeldImages(core: AppCore): Promise<void> {
  const c = await clusterOf(core).catch(() => undefined);
  if (c === undefined) return;
  try {
    const { syncHeldImages } = await import('../cluster/image-index.ts');
    await syncHeldImages(c.kv(), c.host!, heldImages(core.images));
  } catch (e) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', msg: 'the images this host holds were not published to the cluster', component: 'cluster', err: String(e) })}\n`);
  }
}

/**
 * In a cluster: sha256 → the online hosts holding it (sorted), for `image ls`; undefined when standalone, or when
 * etcd does not answer (the list then says nothing of other hosts rather than fail).
 */
export async function holdingHosts(core: AppCore): Promise<Map<string, string[]> | undefined> {
  const c = await clusterOf(core);
  if (c === undefined) return undefined;
  const { listHolders } = await import('../cluster/image-index.ts');
  const holders = await listHolders(c.kv()).catch(() => undefined);
  if (holders === undefined) return undefined;
  const out = new Map<string, string[]>();
  for (const h of holders) out.set(h.sha256, [...(out.get(h.sha256) ?? []), h.host].sort());
  return out;
}

/** The cluster API route serving this host's images by digest: only what the store holds, never a path. */
export function imagesFileRoute(core: AppCore): PeerFileRoute {
  return {
    resolve: async (id) => {
      const { checkSha256 } = await import('../cluster/image-index.ts');
      const sha256 = checkSha256('sha256', id);
      const image = core.images.byDigest(sha256);
      if (image === undefined) throw new VirtnodeError('NOT_FOUND', `sha256: this host holds no image with sha256 ${sha256}`, { field: 'sha256' });
      return { path: image.path, etag: `"${sha256}"` };
    },
  };
}

/**
 * The sha256 a launch of `name` from this host carries: none for a template here (templates stay on their host),
 * the digest of this host's image of that name, else of the image of that name on the cluster's online hosts.
 */
export async function launchDigest(core: AppCore, c: ClusterService, name: string): Promise<string | undefined> {
  if (core.core.repos.templates.get(name) !== undefined) return undefined;
  const here = core.images.list().find((i) => i.name === name);
  if (here !== undefined) return here.sha256;
  const { digestOfName } = await import('../cluster/image-index.ts');
  return digestOfName(c.kv(), name, 'image');
}

export interface ImageFetch {
  /** The hosts it may come from, in the order they are tried. */
  from: string[];
  run(ctx: OperationContext): Promise<void>;
}

/**
 * What a launch of image `name` with content `sha256` needs on this host first: nothing (it holds it, or a
 * template of that name is what launches here), a fetch from the cluster, or a refusal (this host's image of that
 * name is other content; nobody online holds the digest). Checked before the launch's operation starts.
 */
export async function imageFetchPlan(core: AppCore, name: string, sha256: string): Promise<ImageFetch | undefined> {
  if (core.core.repos.templates.get(name) !== undefined) return undefined;
  const here = core.images.list().find((i) => i.name === name);
  const c = await clusterOf(core);
  const host = c?.host ?? 'this host';
  if (here !== undefined) {
    if (here.sha256 === sha256) return undefined;
    throw new VirtnodeError('CONFLICT', `imageSha256: image ${name} on ${host} has sha256 ${here.sha256}, not ${sha256}`, {
      field: 'imageSha256',
      hint: `the image of that name differs between hosts: rename one (\`virtnode image rm ${name}\` and import it again under another name)`,
    });
  }
  if (c === undefined) core.images.get(name); // standalone: the store's own "does not exist"
  const { holdersOf } = await import('../cluster/image-index.ts');
  const holders = (await holdersOf(c!.kv(), sha256)).filter((h) => h.host !== c!.host);
  if (holders.length === 0) {
    throw new VirtnodeError('NOT_FOUND', `image: ${host} has no image ${name}, and no online host of the cluster holds sha256 ${sha256}`, {
      field: 'image',
      hint: 'see `virtnode image ls` on the hosts; import or pull it on one of them',
    });
  }
  const from = holders.map((h) => h.host);
  return { from, run: (ctx) => fetchFromPeers(core, c!, name, sha256, from, ctx) };
}

async function fetchFromPeers(core: AppCore, c: ClusterService, name: string, sha256: string, from: string[], ctx: OperationContext): Promise<void> {
  const [{ peerGet }, { ChecksumMismatch }] = await Promise.all([import('../cluster/peer-files.ts'), import('../images/store/index.ts')]);
  const tls = c.peerTls();
  const errors: VirtnodeError[] = [];
  for (const host of from) {
    ctx.signal.throwIfAborted();
    try {
      const record = await c.hostRecord(host);
      ctx.phase('image', `fetching ${name} (sha256 ${short(sha256)}) from ${host}`);
      const started = Date.now();
      const progress = transferProgress(ctx, 'Fetching');
      let transferred: DownloadProgress | undefined;
      const result = await core.images.pull(new URL(`${IMAGES_PEER_PREFIX}${sha256}`, record.apiUrl).href, {
        name,
        sha256,
        identity: `cluster-image:${sha256}`,
        fetcher: (url, init) => peerGet(url, init, tls),
        lockWaitMs: FETCH_LOCK_WAIT_MS,
        signal: ctx.signal,
        onProgress: (p) => {
          progress(p);
          if (p.done) transferred = p;
        },
      });
      const seconds = (Date.now() - started) / 1000;
      const rate = transferred === undefined ? '' : ` (transfer ${(transferred.bytesPerSecond / MIB).toFixed(1)} MiB/s)`;
      const resumed = result.resumedFrom > 0 ? `, resumed at ${result.resumedFrom} bytes` : '';
      ctx.phase('image', `${name} (sha256 ${short(sha256)}) fetched from ${host}: ${result.bytes} bytes in ${seconds.toFixed(1)} s${rate}, verified${resumed}`);
      await publishHeldImages(core);
      return;
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      const err =
        e instanceof ChecksumMismatch
          ? new VirtnodeError('INVALID', `image: the copy of ${name} on ${host} is damaged: its bytes have sha256 ${e.got}, not ${sha256}; nothing was kept on ${c.host}`, {
              field: 'image',
              hint: `remove the image on ${host} and import it there again`,
              cause: e,
            })
          : new VirtnodeError(e instanceof VirtnodeError ? e.code : 'COMMAND_FAILED', `image: fetching ${name} from ${host} failed: ${e instanceof Error ? e.message : String(e)}`, {
              field: 'image',
              hint: e instanceof VirtnodeError && e.hint !== undefined ? e.hint : 'launch again: the fetch resumes where it stopped',
              cause: e,
            });
      errors.push(err);
    }
  }
  // A damaged copy says more than a host that did not answer.
  throw errors.find((e) => e.cause instanceof ChecksumMismatch) ?? errors.at(-1)!;
}
