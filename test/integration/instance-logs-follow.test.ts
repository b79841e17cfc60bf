import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, VIRTNODE_BIN, virtnode, waitForText } from '../helpers/cli.ts';
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
});
