import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { waitForText } from './cli.ts';
import { TEST_GUEST_READY_MARKER } from './test-guest.ts';

/**
 * Drives the tiny test guest's root shell on its serial console (the instance's serial.sock), reading the answers
 * from its console log. Each command ends with a marker the echoed command line cannot contain.
 */
export class SerialShell {
  private readonly socket: Socket;
  private readonly log: string;
  private counter = 0;

  private constructor(socket: Socket, log: string) {
    this.socket = socket;
    this.log = log;
  }

  static async open(instanceDir: string): Promise<SerialShell> {
    const socket = connect(join(instanceDir, 'serial.sock'));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('data', () => {}); // the console log is read instead
    return new SerialShell(socket, join(instanceDir, 'console.log'));
  }

  /** Waits until the guest printed its ready marker, then opens its shell and checks it answers. */
  static async whenReady(instanceDir: string, timeoutMs: number): Promise<SerialShell> {
    await waitForText(join(instanceDir, 'console.log'), TEST_GUEST_READY_MARKER, timeoutMs);
    const shell = await SerialShell.open(instanceDir);
    await shell.run('true');
    return shell;
  }

  /** Runs a shell command line; resolves with its output and exit status. */
  async run(command: string, timeoutMs = 30_000): Promise<{ status: number; output: string }> {
    const n = ++this.counter;
    const start = this.read().length;
    const tag = `VN${process.pid}X${n}`;
    // On a line of its own, so a command ending in `&` works too.
    this.socket.write(`${command}\necho "${tag.slice(0, 2)}""${tag.slice(2)} $?"\n`);
    const deadline = Date.now() + timeoutMs;
    const done = new RegExp(`${tag} (\\d+)`);
    for (;;) {
      const text = this.read().slice(start);
      const match = done.exec(text);
      if (match !== null) return { status: Number(match[1]), output: text.slice(0, match.index) };
      if (Date.now() > deadline) throw new Error(`"${command}" did not finish within ${timeoutMs} ms; console:\n${text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private read(): string {
    try {
      return readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A udhcpc script for busybox: applies the lease (address, default route). */
export const UDHCPC_SCRIPT_SETUP =
  `printf '#!/bin/sh\\ncase "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface"; [ -n "$router" ] && ip route add default via "$router" dev "$interface"; [ -n "$dns" ] && echo "nameserver $dns" > /etc/resolv.conf;; esac\\nexit 0\\n' > /tmp/udhcpc.sh && chmod +x /tmp/udhcpc.sh`;
