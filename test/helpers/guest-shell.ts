import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { TEST_GUEST_READY_MARKER } from './test-guest.ts';

function consoleLog(home: string, name: string, file = 'console.log'): string {
  try {
    return readFileSync(join(home, 'instances', name, file), 'utf8');
  } catch {
    return '';
  }
}

/**
 * The console log after the part a daemon rotated out of it (`console.log.1`, over the log's size cap): a rotation
 * between the command and the read moves the guest's answer there.
 */
function consoleOutput(home: string, name: string): string {
  return consoleLog(home, name, 'console.log.1') + consoleLog(home, name);
}

let counter = 0;

/**
 * Runs a command in the tiny test guest's serial shell and returns what it printed between unique markers.
 * The command's output must be one line; the marker lines are told apart from the echoed command line by
 * being built in the guest (`$((...))`).
 */
export async function guestRun(home: string, name: string, command: string, timeoutMs = 30_000): Promise<string> {
  const id = `${process.pid}x${++counter}`;
  const a = 1000 + counter;
  // The guest prints OUT<id>-<a+1>[...]END<id>: the sum is computed in the guest, so the echo never matches.
  const line = `echo "OUT${id}-$((${a}+1))[$(${command})]END${id}"\n`;
  const pattern = new RegExp(`OUT${id}-${a + 1}\\[([^\\n]*?)\\]END${id}`);
  const socket = connect(join(home, 'instances', name, 'serial.sock'));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('data', () => {}); // the log keeps the output; drain the socket
  try {
    socket.write(line);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(consoleOutput(home, name));
      if (match !== null) return match[1]!;
      if (Date.now() > deadline) throw new Error(`no answer to \`${command}\` from ${name} within ${timeoutMs} ms; console ends with:\n${consoleOutput(home, name).slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    socket.destroy();
  }
}

/** Waits for the n-th readiness marker of the guest (n-th boot) in its console log. */
export async function waitForBoot(home: string, name: string, nth = 1, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (consoleLog(home, name).split(TEST_GUEST_READY_MARKER).length - 1 >= nth) return;
    if (Date.now() > deadline) throw new Error(`${name} did not boot (${nth}) within ${timeoutMs} ms:\n${consoleLog(home, name).slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes a short text into the first sector of a guest block device, bypassing the guest's page cache. */
export function writeSector(device: string, text: string): string {
  return `echo ${text} | dd of=${device} bs=512 count=1 conv=sync oflag=direct 2>/dev/null && echo written`;
}

/** Reads the text back from the first sector (O_DIRECT: from the disk, not from a cache). */
export function readSector(device: string): string {
  return `dd if=${device} bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\\000'`;
}
