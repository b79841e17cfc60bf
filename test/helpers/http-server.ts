import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServedFile {
  body: Buffer;
  /** Strong ETag sent and honoured in If-Range (default: a hash of the body). */
  etag?: string;
  lastModified?: string;
  /** Advertise and honour byte ranges (default true). */
  ranges?: boolean;
  /** Content-Type (default application/octet-stream). */
  contentType?: string;
  /** Never answer (headers included): a server that accepted the connection and hangs. */
  hang?: boolean;
  /** Send this many body bytes, then go silent (the connection stays open). */
  stallAfter?: number;
  /** No Content-Length (a chunked body): the client learns the size only at the end. */
  lengthUnknown?: boolean;
}

export interface ServedRequest {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
  /** Body bytes actually written to the socket for this request. */
  bytesSent: number;
}

const CHUNK_BYTES = 16 * 1024;

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A SHA256SUMS body in GNU coreutils format. */
export function sha256sums(entries: Record<string, Buffer>): string {
  return Object.entries(entries)
    .map(([name, body]) => `${sha256(body)}  ${name}\n`)
    .join('');
}

/**
 * A real HTTP server on 127.0.0.1 for download tests: byte ranges with If-Range (ETag / Last-Modified),
 * optional throttling, a way to cut the connection after N bytes, and a log of what each request received.
 */
export class TestHttpServer {
  readonly requests: ServedRequest[] = [];
  private readonly files = new Map<string, ServedFile>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  private port = 0;
  private throttleBytesPerSecond: number | undefined;
  private cutAfter: number | undefined;

  static async start(): Promise<TestHttpServer> {
    const s = new TestHttpServer();
    await s.listen();
    return s;
  }

  private async listen(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  serve(path: string, file: ServedFile | Buffer | string): void {
    const f = Buffer.isBuffer(file) || typeof file === 'string' ? { body: Buffer.from(file) } : file;
    this.files.set(path, f);
  }

  /** Changes what a path is served with (e.g. a new ETag, as if the file were replaced). */
  update(path: string, changes: Partial<ServedFile>): void {
    const f = this.files.get(path);
    if (f === undefined) throw new Error(`nothing served at ${path}`);
    this.files.set(path, { ...f, ...changes });
  }

  /** Slows every following response body to about this rate; undefined: full speed. */
  throttle(bytesPerSecond: number | undefined): void {
    this.throttleBytesPerSecond = bytesPerSecond;
  }

  /** The next response body is cut (socket destroyed) after this many bytes. */
  cutNextAfter(bytes: number): void {
    this.cutAfter = bytes;
  }

  bytesServed(path: string): number {
    return this.requests.filter((r) => r.path === path).reduce((sum, r) => sum + r.bytesSent, 0);
  }

  requestsFor(path: string): ServedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const record: ServedRequest = { path, range: header('range'), ifRange: header('if-range'), status: 0, bytesSent: 0 };
    this.requests.push(record);
    const file = this.files.get(path);
    if (file === undefined) {
      record.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (file.hang === true) return; // the socket is destroyed by close()
    const ranges = file.ranges !== false;
    const etag = file.etag ?? `"${sha256(file.body).slice(0, 16)}"`;
    const headers: Record<string, string> = { 'content-type': file.contentType ?? 'application/octet-stream', etag };
    if (file.lastModified !== undefined) headers['last-modified'] = file.lastModified;
    if (ranges) headers['accept-ranges'] = 'bytes';

    const size = file.body.length;
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(record.range ?? '');
    const ifRangeOk = record.ifRange === undefined || record.ifRange === etag || (file.lastModified !== undefined && record.ifRange === file.lastModified);
    if (ranges && range !== null && ifRangeOk) {
      start = Number(range[1]);
      if (start >= size) {
        record.status = 416;
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
    }
    if (file.lengthUnknown !== true) headers['content-length'] = String(size - start);
    record.status = status;
    res.writeHead(status, headers);

    const cut = this.cutAfter;
    this.cutAfter = undefined;
    const stallAfter = file.stallAfter;
    if (stallAfter !== undefined) {
      const { stallAfter: _once, ...rest } = file; // only the first response stalls
      this.files.set(path, rest);
    }
    let offset = start;
    while (offset < size) {
      if (res.destroyed) return;
      let end = Math.min(size, offset + CHUNK_BYTES);
      if (cut !== undefined) end = Math.min(end, start + cut);
      if (stallAfter !== undefined) end = Math.min(end, start + stallAfter);
      const chunk = file.body.subarray(offset, end);
      if (chunk.length > 0) {
        const drained = res.write(chunk);
        record.bytesSent += chunk.length;
        offset = end;
        if (!drained) await new Promise((resolve) => res.once('drain', resolve));
      }
      if (stallAfter !== undefined && offset - start >= stallAfter) return; // silent, connection left open
      if (cut !== undefined && offset - start >= cut) {
        // Let the bytes written so far reach the client, then drop the connection mid-body.
        await sleep(50);
        res.socket?.destroy();
        return;
      }
      if (res.destroyed) return;
      if (this.throttleBytesPerSecond !== undefined) await sleep((chunk.length / this.throttleBytesPerSecond) * 1000);
    }
    res.end();
  }
}

export interface TestImages {
  dir: string;
  /** qcow2, 64 MiB virtual, a few hundred KiB on disk, with some data written in it. */
  qcow2: string;
  /** `xz -k` of the qcow2. */
  qcow2Xz: string;
}

/** A small qcow2 (64 MiB virtual) with 256 KiB of `pattern` written in it: same size, distinct content per pattern. */
export async function createQcow2(path: string, pattern = 0x5a): Promise<Buffer> {
  const { run } = await import('../../src/exec/run.ts');
  const { readFile } = await import('node:fs/promises');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M'], { timeoutMs: 30_000 });
  await run(['qemu-io', '-f', 'qcow2', '-c', `write -P ${pattern} 1M 256k`, path], { timeoutMs: 30_000 });
  return readFile(path);
}

/** Builds the small test images that the image store and pull tests serve and import. */
export async function createTestImages(dir: string): Promise<TestImages> {
  const { run } = await import('../../src/exec/run.ts');
  const qcow2 = `${dir}/test.qcow2`;
  await createQcow2(qcow2);
  await run(['xz', '-k', '-f', qcow2], { timeoutMs: 30_000 });
  return { dir, qcow2, qcow2Xz: `${qcow2}.xz` };
}
