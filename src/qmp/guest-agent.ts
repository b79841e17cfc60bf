import { randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError } from '../lib/errors.ts';
import { LineFramer } from './framing.ts';

export const GUEST_AGENT_TIMEOUT_MS = 10_000;
const EXEC_POLL_MS = 50;
/** The agent writes this byte before the reply to guest-sync-delimited, so stale output before it can be skipped. */
const SYNC_SENTINEL = '\xff';

export interface GuestInterface {
  name: string;
  hardwareAddress: string | undefined;
  addresses: Array<{ type: 'ipv4' | 'ipv6'; address: string; prefix: number }>;
}

export interface GuestExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

function agentSilent(command: string, timeoutMs: number): VirtnodeError {
  return new VirtnodeError('TIMEOUT', `the guest agent did not answer ${command} within ${timeoutMs} ms`, {
    hint: 'the guest may still be booting, or may not run qemu-guest-agent',
  });
}

/**
 * Client for qemu-guest-agent, reached through the virtio-serial port QEMU exposes as a UNIX socket. The agent
 * has no greeting and the channel may hold stale bytes from an earlier session, so every session starts with
 * guest-sync-delimited: a random id, answered after a 0xFF sentinel; anything before it is discarded.
 */
export class GuestAgent {
  private readonly socket: Socket;
  private readonly framer = new LineFramer();
  private synced = false;
  private waiting: { resolve: (line: string) => void; reject: (e: VirtnodeError) => void } | undefined;
  private closedError: VirtnodeError | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1'); // byte-transparent, so the 0xFF sentinel survives decoding
    socket.on('data', (chunk: string) => this.onData(chunk));
    const onGone = () => {
      this.closedError = new VirtnodeError('QMP_DISCONNECTED', 'the guest agent channel closed');
      this.waiting?.reject(this.closedError);
      this.waiting = undefined;
    };
    socket.on('close', onGone);
    socket.on('error', onGone);
  }

  static async connect(path: string, options: { timeoutMs?: number } = {}): Promise<GuestAgent> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', (e) =>
        reject(new VirtnodeError('QMP_DISCONNECTED', `cannot reach the guest agent socket ${path}: ${e.message}`, { cause: e })),
      );
    });
    const agent = new GuestAgent(socket);
    try {
      await agent.sync(options.timeoutMs ?? GUEST_AGENT_TIMEOUT_MS);
    } catch (e) {
      agent.close();
      throw e;
    }
    return agent;
  }

  private onData(chunk: string): void {
    let text = chunk;
    if (!this.synced) {
      const at = text.lastIndexOf(SYNC_SENTINEL);
      if (at < 0) return; // stale output from before our sync: drop it
      text = text.slice(at + 1);
      this.synced = true;
    }
    for (const line of this.framer.push(text)) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.resolve(Buffer.from(line, 'latin1').toString('utf8'));
    }
  }

  private async request(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    if (this.closedError !== undefined) throw this.closedError;
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(agentSilent(command, timeoutMs));
      }, timeoutMs);
      this.waiting = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(`${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }) })}\n`);
    });
    let message: { return?: unknown; error?: { class?: string; desc?: string } };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      throw new VirtnodeError('QMP_PROTOCOL', `the guest agent sent something that is not JSON: ${line.slice(0, 120)}`);
    }
    if (message.error !== undefined) {
      throw new VirtnodeError('QMP_COMMAND', `the guest agent refused ${command}: ${message.error.desc ?? 'unknown error'} (${message.error.class ?? 'GenericError'})`);
    }
    return message.return;
  }

  private async sync(timeoutMs: number): Promise<void> {
    const id = randomInt(1, 2 ** 31);
    this.synced = false;
    // A leading 0xFF makes an agent that was mid-way through parsing a stale request discard it.
    this.socket.write(Buffer.from([0xff]));
    const got = await this.request('guest-sync-delimited', { id }, timeoutMs);
    if (got !== id) throw new VirtnodeError('QMP_PROTOCOL', `guest agent sync answered ${String(got)}, expected ${id}`);
  }

  async ping(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.request('guest-ping', undefined, options.timeoutMs ?? GUEST_AGENT_TIMEOUT_MS);
  }

  async info(): Promise<{ version: string; commands: string[] }> {
    const info = (await this.request('guest-info', undefined, GUEST_AGENT_TIMEOUT_MS)) as {
      version: string;
      supported_commands: Array<{ name: string; enabled: boolean }>;
    };
    return { version: info.version, commands: info.supported_commands.filter((c) => c.enabled).map((c) => c.name) };
  }

  async networkInterfaces(): Promise<GuestInterface[]> {
    const raw = (await this.request('guest-network-get-interfaces', undefined, GUEST_AGENT_TIMEOUT_MS)) as Array<{
      name: string;
      'hardware-address'?: string;
      'ip-addresses'?: Array<{ 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }>;
    }>;
    return raw.map((i) => ({
      name: i.name,
      hardwareAddress: i['hardware-address'],
      addresses: (i['ip-addresses'] ?? []).map((a) => ({ type: a['ip-address-type'], address: a['ip-address'], prefix: a.prefix })),
    }));
  }

  /** Runs a program in the guest (no shell unless you run one) and waits for it to exit. */
  async exec(path: string, args: string[] = [], options: { input?: string; timeoutMs?: number } = {}): Promise<GuestExecResult> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const started = (await this.request(
      'guest-exec',
      {
        path,
        arg: args,
        'capture-output': true,
        ...(options.input === undefined ? {} : { 'input-data': Buffer.from(options.input).toString('base64') }),
      },
      GUEST_AGENT_TIMEOUT_MS,
    )) as { pid: number };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = (await this.request('guest-exec-status', { pid: started.pid }, GUEST_AGENT_TIMEOUT_MS)) as {
        exited: boolean;
        exitcode?: number;
        signal?: number;
        'out-data'?: string;
        'err-data'?: string;
      };
      if (status.exited) {
        return {
          exitCode: status.exitcode ?? 128 + (status.signal ?? 0),
          stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString('utf8'),
          stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString('utf8'),
        };
      }
      if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `${path} did not finish in the guest within ${timeoutMs} ms`);
      await sleep(EXEC_POLL_MS);
    }
  }

  async fsfreezeFreeze(): Promise<number> {
    return (await this.request('guest-fsfreeze-freeze', undefined, 60_000)) as number;
  }

  async fsfreezeThaw(): Promise<number> {
    return (await this.request('guest-fsfreeze-thaw', undefined, 60_000)) as number;
  }

  async fsfreezeStatus(): Promise<'thawed' | 'frozen'> {
    return (await this.request('guest-fsfreeze-status', undefined, GUEST_AGENT_TIMEOUT_MS)) as 'thawed' | 'frozen';
  }

  close(): void {
    this.socket.destroy();
  }
}
