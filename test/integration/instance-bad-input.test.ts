import { readdirSync, statSync } from 'node:fs';
import { totalmem, cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--kernel', guest.kernel, '--initrd', guest.initrd];

describe('bad input gets a clear error, a stable exit code, and changes nothing', () => {
  const { home, cleanup } = tempHome();
  let before: { list: string; dirs: string[] };
  const snapshot = async () => ({
    list: (await virtnode(home, ['list', '--format', 'json'])).stdout,
    dirs: readdirSync(join(home, 'instances')).sort(),
  });

  beforeAll(async () => {
    expect((await virtnode(home, ['create', 'existing', ...bootArgs])).code).toBe(0);
    before = await snapshot();
  });
  afterAll(cleanup);

  const hugeMemory = `${Math.ceil(totalmem() / 2 ** 30) + 1}G`;
  const cases: Array<[string, string[], number, RegExp]> = [
    ['an invalid name', ['create', 'Bad_Name', ...bootArgs], 2, /^error: name: "Bad_Name" is not a valid name\nhint: use 1-63 lowercase letters/],
    ['a name with a path in it', ['create', '../../etc', ...bootArgs], 2, /name: "..\/..\/etc" is not a valid name/],
    ['a name too long', ['create', 'a'.repeat(64), ...bootArgs], 2, /is not a valid name/],
    ['a duplicate name', ['create', 'existing', ...bootArgs], 4, /instance existing already exists/],
    ['memory beyond the host', ['create', 'm', '--memory', hugeMemory, ...bootArgs], 2, /--memory: .* is out of range\nhint: use 16M to/],
    ['memory that is not a size', ['create', 'm', '--memory', 'lots', ...bootArgs], 2, /--memory: "lots" is not a size/],
    ['more CPUs than the host', ['create', 'c', '--cpus', String(cpus().length + 1), ...bootArgs], 2, new RegExp(`--cpus: .* use a whole number from 1 to ${cpus().length}`, 's')],
    ['zero CPUs', ['create', 'c', '--cpus', '0', ...bootArgs], 2, /--cpus: "0" is not valid/],
    ['a missing kernel', ['create', 'k', '--kernel', '/nonexistent/vmlinuz'], 2, /--kernel: \/nonexistent\/vmlinuz does not exist/],
    ['a missing disk', ['create', 'd', '--disk', '/nonexistent.qcow2'], 2, /--disk: \/nonexistent.qcow2 does not exist/],
    ['a bad disk size', ['create', 'd', '--disk-size', '-5G'], 2, /--disk-size: "-5G" is not a size/],
    ['both --disk and --disk-size', ['create', 'd', '--disk', guest.initrd, '--disk-size', '1G'], 2, /give either --disk PATH .* or --disk-size/],
    ['nothing to boot', ['create', 'n'], 2, /an instance needs something to boot/],
    ['an unknown accelerator', ['create', 'a', '--accel', 'xen', ...bootArgs], 2, /--accel: "xen" is not valid\nhint: use auto, kvm or tcg/],
    ['an unknown output format', ['create', 'f', '--format', 'xml', ...bootArgs], 2, /--format: "xml" is not valid/],
    ['an unknown instance', ['start', 'ghost'], 3, /instance ghost does not exist/],
    ['pausing a stopped VM', ['pause', 'existing'], 5, /cannot pause instance existing: it is defined \(pause needs running\)/],
    ['stopping a VM that never ran', ['stop', 'existing'], 5, /cannot stop instance existing: it is defined/],
    ['a bad stop timeout', ['stop', 'existing', '--timeout', 'soon'], 2, /--timeout: "soon" is not a duration/],
    ['a console of a stopped VM', ['console', 'existing'], 5, /its console exists only while it runs/],
    ['an unknown command', ['explode'], 2, /unknown command 'explode'/],
  ];

  it.each(cases)('%s', async (_what, args, exitCode, message) => {
    const r = await virtnode(home, args);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(exitCode);
    expect(r.stdout).toBe('');
    expect(await snapshot()).toEqual(before);
  });

  it('the state database and instance directories are private to their owner', () => {
    expect(statSync(join(home, 'virtnode.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'instances', 'existing')).mode & 0o777).toBe(0o700);
  });
});
