/**
 * Just enough ONC RPC (RFC 5531) over TCP, with XDR (RFC 4506), for virtnode's few NFSv3 calls on an export that
 * is not mounted: one connection per call, AUTH_UNIX as root.
 */
import { Socket } from 'node:net';

export class XdrWriter {
  private readonly parts: Buffer[] = [];

  uint(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }

  hyper(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }

  opaque(data: Buffer): this {
    this.uint(data.length);
    return this.fixed(data);
  }

  /** Fixed-length opaque data, padded to 4 bytes. */
  fixed(data: Buffer): this {
    this.parts.push(data);
    const pad = (4 - (data.length % 4)) % 4;
    if (pad > 0) this.parts.push(Buffer.alloc(pad));
    return this;
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class XdrReader {
  private offset = 0;
  private readonly data: Buffer;

  constructor(data: Buffer) {
    this.data = data;
  }

  uint(): number {
    const n = this.data.readUInt32BE(this.offset);
    this.offset += 4;
    return n;
  }

  hyper(): bigint {
    const n = this.data.readBigUInt64BE(this.offset);
    this.offset += 8;
    return n;
  }

  bool(): boolean {
    return this.uint() !== 0;
  }

  fixed(length: number): Buffer {
    const b = this.data.subarray(this.offset, this.offset + length);
    if (b.length !== length) throw new Error('XDR: reply ends early');
    this.offset += length + ((4 - (length % 4)) % 4);
    return b;
  }

  opaque(): Buffer {
    return this.fixed(this.uint());
  }

  string(): string {
    return this.opaque().toString('utf8');
  }

  skipBytes(bytes: number): void {
    this.offset += bytes;
  }
}

/** Why an RPC failed at the transport or RPC level (not an NFS status). */
export class RpcError extends Error {
  readonly reason: 'unreachable' | 'timeout' | 'rejected' | 'protocol';

  constructor(message: string, reason: RpcError['reason']) {
    super(message);
    this.reason = reason;
  }
}

const AUTH_UNIX = 1;
let nextXid = Math.floor(Math.random() * 0x7fffffff);

function callMessage(xid: number, program: number, version: number, procedure: number, args: Buffer): Buffer {
  const cred = new XdrWriter().uint(0).string('virtnode').uint(0).uint(0).uint(0).bytes(); // stamp, machine, uid, gid, gids
  const body = new XdrWriter().uint(xid).uint(0).uint(2).uint(program).uint(version).uint(procedure).uint(AUTH_UNIX).opaque(cred).uint(0).uint(0).bytes();
  const message = Buffer.concat([body, args]);
  const mark = Buffer.alloc(4);
  mark.writeUInt32BE((0x80000000 | message.length) >>> 0);
  return Buffer.concat([mark, message]);
}

/** One RPC call; resolves with a reader positioned at the procedure's results. */
export async function rpcCall(
  host: string,
  port: number,
  call: { program: number; version: number; procedure: number; args: Buffer },
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<XdrReader> {
  const xid = nextXid++ >>> 0;
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const socket = new Socket();
    const fragments: Buffer[] = [];
    let pending = Buffer.alloc(0);
    let settled = false;
    const finish = (error: Error | undefined, value?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error !== undefined) reject(error);
      else resolve(value!);
    };
    const onAbort = () => finish(new RpcError('cancelled', 'timeout'));
    const timer = setTimeout(() => finish(new RpcError(`no answer from ${host}:${port} within ${options.timeoutMs} ms`, 'timeout')), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(new RpcError(`cannot reach ${host}:${port}: ${e.code ?? e.message}`, 'unreachable')));
    socket.on('close', () => finish(new RpcError(`${host}:${port} closed the connection before answering`, 'protocol')));
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const mark = pending.readUInt32BE(0);
        const length = mark & 0x7fffffff;
        if (pending.length < 4 + length) return;
        fragments.push(pending.subarray(4, 4 + length));
        pending = pending.subarray(4 + length);
        if ((mark & 0x80000000) !== 0) {
          finish(undefined, Buffer.concat(fragments));
          return;
        }
      }
    });
    socket.connect({ host, port }, () => socket.write(callMessage(xid, call.program, call.version, call.procedure, call.args)));
  });
  const r = new XdrReader(reply);
  if (r.uint() !== xid || r.uint() !== 1) throw new RpcError('an answer to another call', 'protocol');
  if (r.uint() !== 0) throw new RpcError(`the server refused the call (program ${call.program})`, 'rejected');
  r.uint(); // verifier flavor
  r.opaque();
  const accept = r.uint();
  if (accept !== 0) throw new RpcError(`the server does not serve program ${call.program} version ${call.version} procedure ${call.procedure} (accept status ${accept})`, 'rejected');
  return r;
}
