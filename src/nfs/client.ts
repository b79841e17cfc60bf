/**
 * The few NFSv3 operations virtnode does itself on an export it does not mount (QEMU and qemu-img reach the
 * files through their own libnfs client): check the export, list its top directory, test a name, remove a file,
 * and the file system's size. Volumes live in the export's top directory, which is where libnfs (as QEMU uses
 * it) opens `nfs://SERVER/EXPORT/FILE`.
 */
import { VirtnodeError } from '../lib/errors.ts';
import { RpcError, rpcCall, XdrReader, XdrWriter } from './rpc.ts';

const PORTMAP = { program: 100000, version: 2, port: 111 };
const MOUNT = { program: 100005, version: 3 };
const NFS = { program: 100003, version: 3 };
const NFS3_OK = 0;
const NFS3ERR_NOENT = 2;
const FATTR3_BYTES = 84;
const CALL_TIMEOUT_MS = 5_000;

/** `SERVER:/export` split and checked. */
export interface NfsSource {
  server: string;
  export: string;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\])$/;

export function parseNfsSource(field: string, text: string): NfsSource {
  const hint = 'give SERVER:/EXPORT, e.g. 192.0.2.10:/srv/vm-disks or nfs1.example.org:/export';
  const colon = text.indexOf(':/');
  if (colon <= 0) throw new VirtnodeError('INVALID', `${field}: "${text}" is not SERVER:/EXPORT`, { field, hint });
  const server = text.slice(0, colon);
  const path = text.slice(colon + 1);
  if (!HOST.test(server)) throw new VirtnodeError('INVALID', `${field}: "${server}" is not a host name or address`, { field, hint });
  if (/[\0\s?#%]/.test(path) || path.split('/').some((p) => p === '..' || p === '.')) {
    throw new VirtnodeError('INVALID', `${field}: "${path}" is not a plain export path`, { field, hint: 'no "..", ".", spaces, "?", "#" or "%" in the path' });
  }
  const exportPath = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return { server, export: exportPath.replace(/\/{2,}/g, '/') };
}

/** The URL QEMU and qemu-img open for a file in the export's top directory. */
export function nfsUrl(source: NfsSource, file: string): string {
  return `nfs://${source.server}${source.export === '/' ? '' : source.export}/${file}`;
}

/** The source of a URL made by nfsUrl, and the file's name; undefined for anything else. */
export function parseNfsUrl(url: string): (NfsSource & { file: string }) | undefined {
  const m = /^nfs:\/\/([^/]+)(\/.*)?\/([^/]+)$/.exec(url);
  if (m === null) return undefined;
  return { server: m[1]!, export: m[2] ?? '/', file: m[3]! };
}

export interface NfsEntry {
  name: string;
  size: number;
  /** Bytes the server's file system holds for it. */
  used: number;
}

function describe(source: NfsSource): string {
  return `${source.server}:${source.export}`;
}

function nfsStatusError(source: NfsSource, what: string, status: number): VirtnodeError {
  return new VirtnodeError('COMMAND_FAILED', `NFS server ${describe(source)}: ${what} failed with NFS status ${status}`);
}

/** A mounted-by-RPC view of one export's top directory (no kernel mount). */
export class NfsExport {
  readonly source: NfsSource;
  private readonly nfsPort: number;
  private readonly root: Buffer;

  private constructor(source: NfsSource, nfsPort: number, root: Buffer) {
    this.source = source;
    this.nfsPort = nfsPort;
    this.root = root;
  }

  /** Looks the export up (portmapper, MOUNT); an unreachable server or unknown export is an INVALID `field`. */
  static async open(source: NfsSource, field: string, options: { signal?: AbortSignal } = {}): Promise<NfsExport> {
    const call = { timeoutMs: CALL_TIMEOUT_MS, ...(options.signal === undefined ? {} : { signal: options.signal }) };
    const fail = (message: string, cause?: unknown) =>
      new VirtnodeError('INVALID', `${field}: ${message}`, { field, hint: 'check the server runs rpcbind and an NFSv3 server, and the export name', ...(cause === undefined ? {} : { cause }) });
    try {
      const getport = async (program: number, version: number) => {
        const r = await rpcCall(source.server, PORTMAP.port, { ...PORTMAP, procedure: 3, args: new XdrWriter().uint(program).uint(version).uint(6).uint(0).bytes() }, call);
        return r.uint();
      };
      const mountPort = await getport(MOUNT.program, MOUNT.version);
      const nfsPort = await getport(NFS.program, NFS.version);
      if (mountPort === 0 || nfsPort === 0) throw fail(`${source.server} offers no NFSv3 ${mountPort === 0 ? 'mount' : 'NFS'} service over TCP`);
      const r = await rpcCall(source.server, mountPort, { ...MOUNT, procedure: 1, args: new XdrWriter().string(source.export).bytes() }, call);
      const status = r.uint();
      if (status !== 0) throw fail(`${source.server} does not export ${source.export} to this host (MOUNT status ${status})`);
      return new NfsExport(source, nfsPort, Buffer.from(r.opaque()));
    } catch (e) {
      if (e instanceof RpcError) throw fail(`cannot use NFS server ${source.server}: ${e.message}`, e);
      throw e;
    }
  }

  private async nfs(procedure: number, args: Buffer): Promise<XdrReader> {
    try {
      return await rpcCall(this.source.server, this.nfsPort, { ...NFS, procedure, args }, { timeoutMs: CALL_TIMEOUT_MS });
    } catch (e) {
      if (e instanceof RpcError) throw new VirtnodeError('COMMAND_FAILED', `NFS server ${describe(this.source)}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  private dirop(name: string): Buffer {
    return new XdrWriter().opaque(this.root).string(name).bytes();
  }

  /** Does the top directory hold `name`? (LOOKUP) */
  async exists(name: string): Promise<boolean> {
    const status = (await this.nfs(3, this.dirop(name))).uint();
    if (status === NFS3_OK) return true;
    if (status === NFS3ERR_NOENT) return false;
    throw nfsStatusError(this.source, `looking up ${name}`, status);
  }

  /** Removes a file of the top directory; a missing one is no error. (REMOVE) */
  async remove(name: string): Promise<void> {
    const status = (await this.nfs(12, this.dirop(name))).uint();
    if (status !== NFS3_OK && status !== NFS3ERR_NOENT) throw nfsStatusError(this.source, `removing ${name}`, status);
  }

  /** The top directory's entries except . and .., with their sizes and space used. (READDIRPLUS) */
  async list(): Promise<NfsEntry[]> {
    const out: NfsEntry[] = [];
    let cookie = 0n;
    let verifier = Buffer.alloc(8);
    for (;;) {
      const r = await this.nfs(17, new XdrWriter().opaque(this.root).hyper(cookie).fixed(verifier).uint(8192).uint(65536).bytes());
      const status = r.uint();
      if (r.bool()) r.skipBytes(FATTR3_BYTES);
      if (status !== NFS3_OK) throw nfsStatusError(this.source, 'listing the export', status);
      verifier = Buffer.from(r.fixed(8));
      while (r.bool()) {
        r.hyper(); // fileid
        const name = r.string();
        cookie = r.hyper();
        let size = 0;
        let used = 0;
        if (r.bool()) {
          r.skipBytes(20); // type, mode, nlink, uid, gid
          size = Number(r.hyper());
          used = Number(r.hyper());
          r.skipBytes(FATTR3_BYTES - 36);
        }
        if (r.bool()) r.opaque(); // handle
        if (name !== '.' && name !== '..') out.push({ name, size, used });
      }
      if (r.bool()) return out;
    }
  }

  /** The file system's total and available bytes. (FSSTAT) */
  async capacity(): Promise<{ total: number; free: number; available: number }> {
    const r = await this.nfs(18, new XdrWriter().opaque(this.root).bytes());
    const status = r.uint();
    if (r.bool()) r.skipBytes(FATTR3_BYTES);
    if (status !== NFS3_OK) throw nfsStatusError(this.source, 'asking for its size', status);
    return { total: Number(r.hyper()), free: Number(r.hyper()), available: Number(r.hyper()) };
  }
}
