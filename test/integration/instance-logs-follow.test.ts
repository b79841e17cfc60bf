import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, VIRTNODE_BIN, virtnode, waitForText } from '../helpers/cli.ts';
import { eventually, startDaemon } from '../helpers/daemon.ts';
import { guestRun, waitForBoot } from '../helpers/guest-shell.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

describe('virtnode logs --follow', () => {
  const { home, cleanup } = tempHome();
  afterAll(cleanup);

  it('prints the log so far, then what the guest writes next, until interrupted', async () => {
    const g = testGuest();
    expect((await virtnode(home, ['create', 'f1', '--memory', '128M', '--kernel', g.kernel, '--initrd', g.initrd, '--cmdline', g.cmdline, '--start'])).code).toBe(0);
    await waitForText(join(home, 'instances', 'f1', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
    const follower = spawn(VIRTNODE_BIN, ['logs', '--follow', 'f1'], { env: { ...process.env, VIRTNODE_HOME: home } });
    let seen = '';
    follower.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    try {
      const deadline = Date.now() + 10_000;
      while (!seen.includes(TEST_GUEST_READY_MARKER) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen).toContain(TEST_GUEST_READY_MARKER);
      // New output, typed on the console by another process, reaches the follower.
      await virtnode(home, ['console', 'f1'], { input: 'echo followed-$((40+2))\n', timeoutMs: 20_000 });
      const until = Date.now() + 10_000;
      while (!seen.includes('followed-42') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(seen).toContain('followed-42');
    } finally {
      const exited = new Promise<number | null>((r) => follower.once('exit', (code) => r(code)));
      follower.kill('SIGINT');
      expect(await exited).toBe(0);
    }
    expect((await virtnode(home, ['delete', '--force', 'f1'])).code).toBe(0);
  });

  it('keeps the console log under its cap while a guest floods it: the daemon rotates it to console.log.1, and the log goes on', async () => {
    const g = testGuest();
    const cap = 16 * 1024;
    const daemon = await startDaemon(home, [], { env: { VIRTNODE_CONSOLE_LOG_MAX_BYTES: String(cap) } });
    const log = join(home, 'instances', 'flood', 'console.log');
    try {
      expect((await virtnode(home, ['create', 'flood', '--memory', '128M', '--kernel', g.kernel, '--initrd', g.initrd, '--cmdline', g.cmdline, '--start'])).code).toBe(0);
      await waitForBoot(home, 'flood');
      await guestRun(home, 'flood', 'seq 100000 112000 >/dev/console; echo flooded', 120_000); // about 84 KB on the serial console
      // Rotated, and none pending: the log is under the cap again (the daemon checks it each second).
      await eventually(() => (existsSync(`${log}.1`) && statSync(log).size <= cap ? true : undefined), 10_000, 'a rotated console log');
      expect(statSync(`${log}.1`).size).toBeGreaterThan(cap);
      // QEMU writes on into the emptied log (not past a hole where the old bytes were). The answer may itself fill
      // the log past the cap and be rotated out to console.log.1 (guestRun reads both); what follows it, the
      // shell's next prompt, is then at the start of the emptied log.
      await guestRun(home, 'flood', 'echo after-$((20+1))');
      await eventually(() => (/after-21[\s\S]*test-guest# /.test(readFileSync(`${log}.1`, 'latin1') + readFileSync(log, 'latin1')) ? true : undefined), 10_000, 'output after the rotation');
      // Should a rotation have emptied the log after the prompt too, another command writes into it.
      const after = await eventually(async () => {
        const text = readFileSync(log, 'latin1');
        if (text.length > 0) return text;
        await guestRun(home, 'flood', 'echo again');
        return undefined;
      }, 60_000, 'output in the emptied log');
      expect(after.startsWith('\0')).toBe(false);
      expect((await virtnode(home, ['delete', '--force', 'flood'])).code).toBe(0);
    } finally {
      await daemon.stop();
    }
    // Longer than its steps' own limits (the flood's 120 s), so a stuck step fails with its own message.
  }, 240_000);
});
