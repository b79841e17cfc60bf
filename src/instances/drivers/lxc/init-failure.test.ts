import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { consoleTail, parseInitFailure } from './init-failure.ts';

// The console of a container started with the host's inotify instances used up (LXC 5.0, systemd 252).
const EMFILE_CONSOLE = [
  "Failed to find module 'autofs4'",
  'systemd 252.39-1~deb12u2 running in system mode (+PAM +AUDIT +SELINUX)',
  'Detected virtualization lxc.',
  'Welcome to Debian GNU/Linux 12 (bookworm)!',
  'Hostname set to <localhost>.',
  'Initializing machine ID from random generator.',
  'Failed to create control group inotify object: Too many open files',
  'Failed to allocate manager object: Too many open files',
  '[\u001b[0;1;31m!!!!!!\u001b[0m] Failed to allocate manager object.',
  'Exiting PID 1...',
  '',
].join('\r\n');

describe('parseInitFailure', () => {
  it('names the inotify instance limit, with its value and the sysctl to raise', () => {
    const f = parseInitFailure(EMFILE_CONSOLE, 128);
    expect(f?.hostLimit).toBe(true);
    expect(f?.message).toContain('fs.inotify.max_user_instances (128) is used up');
    expect(f?.hint).toContain('sysctl -w fs.inotify.max_user_instances=');
  });

  it('passes any other reason systemd gives through', () => {
    const f = parseInitFailure('Welcome\nFailed to allocate manager object: Permission denied\nExiting PID 1...\n', 128);
    expect(f).toEqual({ message: "the container's init (systemd) exited: Permission denied", hint: 'see its console log', hostLimit: false });
  });

  it('says nothing about a console where init did not give up', () => {
    expect(parseInitFailure('Debian GNU/Linux 12 ct console\n\nct login: \n', 128)).toBeUndefined();
    expect(parseInitFailure('', undefined)).toBeUndefined();
  });
});

describe('consoleTail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'init-failure-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the last 16 KiB of a long log, and nothing of a missing one', () => {
    const path = join(dir, 'console.log');
    writeFileSync(path, `${'x'.repeat(100_000)}\n${EMFILE_CONSOLE}`);
    const tail = consoleTail(path);
    expect(tail.length).toBe(16 * 1024);
    expect(parseInitFailure(tail, 128)?.hostLimit).toBe(true);
    expect(consoleTail(join(dir, 'none.log'))).toBe('');
  });
});
