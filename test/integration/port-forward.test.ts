import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { qemuPidsUnder, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { SerialShell } from '../helpers/serial-shell.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';
import { readFileSync } from 'node:fs';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

/** What a TCP connection to 127.0.0.1:port reads before the other side closes ('' when refused). */
function readFrom(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('data', (d) => (data += d.toString()));
    socket.on('error', () => resolve(data));
    socket.on('close', () => resolve(data));
  });
}

describe('user-mode port forwards (tiny guest)', { timeout: 180_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-ports-');
  let shell: SerialShell | undefined;
  let blocker: Server | undefined;
  afterAll(() => {
    shell?.close();
    blocker?.close();
    cleanup();
  });
  const run = async (args: string[], code = 0) => {
    const r = await virtnode(home, args);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stderr}`).toBe(code);
    return r;
  };

  it('forwards live, keeps forwards across restarts, refuses taken ports naming the owner, removes live', async () => {
    await run(['create', 'web', ...bootArgs, '--start']);
    await run(['create', 'other', ...bootArgs]);
    await waitForText(join(home, 'instances', 'web', 'console.log'), TEST_GUEST_READY_MARKER, 90_000);
    shell = await SerialShell.open(join(home, 'instances', 'web'));
    // QEMU's user-mode network: the guest is 10.0.2.15; a listener answers each connection with a line.
    await shell.run('ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0');
    await shell.run('(while true; do echo pong-from-guest | nc -l -p 7777; done) >/dev/null 2>&1 &');

    const hostPort = await freeLoopbackPort();
    expect((await run(['port', 'add', 'web', `${hostPort}:7777`])).stdout).toContain(`Forwarding 127.0.0.1:${hostPort}/tcp to web port 7777`);
    let answer = '';
    for (let i = 0; i < 20 && !answer.includes('pong-from-guest'); i++) {
      answer = await readFrom(hostPort);
      if (!answer.includes('pong-from-guest')) await new Promise((r) => setTimeout(r, 500));
    }
    expect(answer).toContain('pong-from-guest');

    const ls = JSON.parse((await run(['port', 'ls', 'web', '--format', 'json'])).stdout) as Array<{ hostPort: number; guestPort: number; hostAddress: string }>;
    expect(ls).toEqual([{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort, guestPort: 7777, owner: 'user' }]);

    // Conflicts, each naming who holds the port.
    const again = await run(['port', 'add', 'other', `${hostPort}:22`], 4);
    expect(again.stderr).toContain(`127.0.0.1:${hostPort}/tcp is already forwarded by instance web`);
    const anyAddress = await run(['port', 'add', 'other', `${hostPort}:22`, '--address', '0.0.0.0'], 4);
    expect(anyAddress.stderr).toContain('already forwarded by instance web');
    blocker = createServer();
    const heldPort = await new Promise<number>((resolve) => blocker!.listen(0, '127.0.0.1', () => resolve((blocker!.address() as { port: number }).port)));
    const held = await run(['port', 'add', 'other', `${heldPort}:22`], 4);
    expect(held.stderr).toMatch(new RegExp(`127.0.0.1:${heldPort}/tcp is in use by process \\S+ \\(pid ${process.pid}\\)`));
    for (const [args, message] of [
      [['port', 'add', 'web', '70000:80'], /ports: the host port 70000 is out of range/],
      [['port', 'add', 'web', '8080'], /ports: "8080" is not HOST:GUEST/],
      [['port', 'add', 'web', '8080:80/sctp'], /ports: "8080:80\/sctp" is not HOST:GUEST/],
      [['port', 'add', 'web', '8080:80', '--address', 'localhost'], /--address: "localhost" is not an IPv4 address/],
    ] as const) {
      const r = await run([...args], 2);
      expect(r.stderr).toMatch(message);
    }

    // Kept for the next start (the forward is part of QEMU's command line then).
    await run(['stop', '--force', 'web']);
    await run(['start', 'web']);
    const [pid] = qemuPidsUnder(join(home, 'instances', 'web'));
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain(`hostfwd=tcp:127.0.0.1:${hostPort}-:7777`);

    // Removed live: nothing listens on the host port afterwards.
    await run(['port', 'rm', 'web', String(hostPort)]);
    expect(await readFrom(hostPort)).toBe('');
    expect((await run(['port', 'ls', 'web', '--format', 'json'])).stdout.trim()).toBe('[]');
    const gone = await run(['port', 'rm', 'web', String(hostPort)], 3);
    expect(gone.stderr).toContain(`instance web forwards no host port ${hostPort}/tcp`);
  });
});
