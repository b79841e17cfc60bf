import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import type { SimCluster } from './cluster-hosts.ts';
import { eventually } from './daemon.ts';

/** What the tests of moves on bridged networks look at: links in a host's namespace, the switch's table, a TCP stream. */

export interface LinkInfo {
  ifname: string;
  master?: string;
  address?: string;
}

export function linksOf(netns: string): LinkInfo[] {
  return JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show'], { encoding: 'utf8' })) as LinkInfo[];
}

/** The switch port (veth to host `u<host>`) where br0 last saw `mac`, if it knows it. */
export function switchPortOf(sim: SimCluster, mac: string): string | undefined {
  const fdb = JSON.parse(execFileSync('bridge', ['-n', sim.switchNetns, '-j', 'fdb', 'show', 'br', 'br0'], { encoding: 'utf8' })) as Array<{ mac: string; ifname: string }>;
  return fdb.find((e) => e.mac === mac.toLowerCase())?.ifname;
}

/**
 * A TCP client that sends a numbered line every `everyMs` and checks each echo comes back in order: any reset,
 * close or out-of-order line is recorded; `maxGapMs` is the longest time without an echo while lines were out.
 */
export class EchoStream {
  private readonly socket: Socket;
  private timer: NodeJS.Timeout | undefined;
  private buffer = '';
  sent = 0;
  received = 0;
  errors: string[] = [];
  maxGapMs = 0;
  private lastEcho = Date.now();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line !== String(this.received)) this.errors.push(`echo ${JSON.stringify(line)} where ${this.received} was due`);
        this.received++;
        const now = Date.now();
        this.maxGapMs = Math.max(this.maxGapMs, now - this.lastEcho);
        this.lastEcho = now;
      }
    });
    socket.on('error', (e) => this.errors.push(`error: ${e.message}`));
    socket.on('close', () => this.errors.push('closed'));
  }

  static async open(host: string, port: number): Promise<EchoStream> {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new EchoStream(socket);
  }

  start(everyMs: number): void {
    this.lastEcho = Date.now();
    this.timer = setInterval(() => {
      // The gap counts only while an echo is due: a line sent and not yet back.
      if (this.received === this.sent) this.lastEcho = Date.now();
      this.socket.write(`${this.sent++}\n`);
    }, everyMs);
  }

  /** Stops sending; resolves once every line sent came back (or after `timeoutMs`). */
  async stop(timeoutMs: number): Promise<void> {
    clearInterval(this.timer);
    await eventually(() => (this.received === this.sent || this.errors.length > 0 ? true : undefined), timeoutMs, 'every line echoed');
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }
}

