import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError } from '../lib/errors.ts';

/**
 * How the SSH wait may probe the forwarded port now:
 * - `blind`: nothing is known about the guest's network; a probe that has no banner after a few seconds is dropped
 *   and made again (slirp accepts the host's connection before the guest has an address).
 * - `wait`: the guest has not shown yet that its network is up: no probe (user-mode networking keeps retrying a
 *   dropped probe's SYN, which reaches sshd once the network is up and costs the guest a whole sshd start).
 * - `hold`: the guest has shown its network is up (the agent, or its console): a probe's connection reaches the guest
 *   at once, so it is kept until sshd answers or the guest refuses it.
 */
export type SshProbeMode = 'blind' | 'wait' | 'hold';

/**
 * A held probe is given up after this long all the same: if the forward's NIC is not the one whose address was
 * seen, its connection is a SYN that user-mode networking retries ever more slowly.
 */
const HOLD_TIMEOUT_MS = 30_000;

export interface SshBannerWait {
  /** Between probes, and how often `wait` is looked at again. */
  pollMs?: number;
  /** How long a blind probe waits for the banner before it is dropped. */
  blindTimeoutMs?: number;
  mode?: () => SshProbeMode;
  signal?: AbortSignal;
}

const BLIND_PROBE_TIMEOUT_MS = 3_000;

/** Resolves when the forwarded port answers with an SSH banner. */
export async function waitForSshBanner(port: number, deadline: number, options: SshBannerWait = {}): Promise<void> {
  const pollMs = options.pollMs ?? 1_000;
  while (Date.now() < deadline) {
    if (options.signal?.aborted) throw new VirtnodeError('TIMEOUT', 'cancelled');
    const mode = options.mode?.() ?? 'blind';
    if (mode !== 'wait') {
      const timeoutMs = mode === 'hold' ? Math.max(Math.min(deadline - Date.now(), HOLD_TIMEOUT_MS), 1) : (options.blindTimeoutMs ?? BLIND_PROBE_TIMEOUT_MS);
      if ((await readBanner(port, timeoutMs, options.signal)).startsWith('SSH-')) return;
    }
    await sleep(pollMs);
  }
  throw new VirtnodeError('TIMEOUT', 'SSH did not answer yet');
}

/** The first line a connection to the port gets, or what came before it closed, timed out or was cancelled. */
function readBanner(port: number, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      signal?.removeEventListener('abort', done);
      socket.destroy();
      resolve(data);
    };
    signal?.addEventListener('abort', done);
    socket.setTimeout(timeoutMs, done);
    socket.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\n')) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}

/**
 * Console lines that mean the guest's network is configured: cloud-init starting its network stage (ordered after
 * the network is up), cloud-init's table of the NICs, a login prompt at the end of the boot, and the line a warm
 * launch's first boot prints when ifup is done (warm-first-boot.py).
 */
const NETWORK_UP_ON_CONSOLE = /Cloud-init v\. \S+ running 'init' at|ci-info: \++ Net device info|^\S+ login: |^virtnode-first-boot: network up/m;
/** A line may be split between two reads: this much of the previous read is looked at again. */
const CARRY_CHARS = 256;

/**
 * Reads a guest's serial console log as it grows and tells whether the guest has shown that its network is up.
 * For images without a guest agent; each call reads only what was added since the last.
 */
export class ConsoleNetworkWatch {
  #offset = 0;
  #carry = '';
  #up = false;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  networkUp(): boolean {
    if (this.#up) return true;
    let fd: number | undefined;
    try {
      const size = statSync(this.path).size;
      if (size < this.#offset) this.#offset = 0; // rotated
      if (size === this.#offset) return false;
      fd = openSync(this.path, 'r');
      const buffer = Buffer.alloc(Math.min(size - this.#offset, 1024 * 1024));
      const read = readSync(fd, buffer, 0, buffer.length, this.#offset);
      this.#offset += read;
      const text = this.#carry + buffer.subarray(0, read).toString('latin1');
      this.#up = NETWORK_UP_ON_CONSOLE.test(text);
      this.#carry = text.slice(-CARRY_CHARS);
    } catch {
      // no log yet
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return this.#up;
  }
}
