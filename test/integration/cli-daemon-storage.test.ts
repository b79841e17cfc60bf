import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { requestsTo } from '../helpers/cli-modes.ts';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

/** A CLI step and the exit code it must end with; `fs`: the output shows filesystem figures that move meanwhile. */
type Step = { args: string[]; code: number; fs?: boolean } | { waitForGuest: string };

const OK = 0;
const INVALID = 2;
const NOT_FOUND = 3;
const CONFLICT = 4;
const INVALID_STATE = 5;

/**
 * Every pool, volume, disk and snapshot command, successes and failures, stopped and with the tiny guest running
 * (live attach, live resize, a snapshot with memory, revert, delete, live detach). Relative paths are given from
 * the state directory (the CLI runs there), so they resolve to the same place in both modes.
 */
function steps(home: string): Step[] {
  const fast = join(home, 'fastdir');
  const s = (code: number, ...args: string[]): Step => ({ args, code });
  const fs = (code: number, ...args: string[]): Step => ({ args, code, fs: true });
  return [
    fs(OK, 'pool', 'ls'),
    fs(OK, 'pool', 'ls', '--format', 'json'),
    fs(OK, 'pool', 'create', 'fast', '--path', fast),
    s(CONFLICT, 'pool', 'create', 'fast', '--path', fast),
    s(CONFLICT, 'pool', 'create', 'other', '--path', fast),
    s(INVALID, 'pool', 'create', 'p', '--path', 'relative/dir'),
    s(INVALID, 'pool', 'create', 'p', '--path', `${fast}/../fastdir`),
    s(INVALID, 'pool', 'create', 'p', '--path', join(home, 'no-such-dir')),
    s(INVALID, 'pool', 'create', 'p', '--path', join(home, 'instances')),
    s(INVALID, 'pool', 'create', 'Bad!', '--path', fast),
    fs(OK, 'pool', 'info', 'fast'),
    fs(OK, 'pool', 'info', 'fast', '--format', 'yaml'),
    s(NOT_FOUND, 'pool', 'info', 'nope'),
    s(INVALID, 'pool', 'info', 'Bad!'),
    s(INVALID, 'pool', 'ls', '--format', 'xml'),
    s(INVALID, 'pool', 'info', ''),
    s(INVALID, 'pool', 'create', 'p', '--path', ''),

    s(OK, 'volume', 'create', 'data', '--size', '64M'),
    s(OK, 'volume', 'create', 'onfast', '--size', '16M', '--pool', 'fast', '--format', 'raw'),
    s(CONFLICT, 'volume', 'create', 'data', '--size', '1M'),
    s(INVALID, 'volume', 'create', 'Bad_Name', '--size', '1G'),
    s(INVALID, 'volume', 'create', 'x', '--size', 'huge'),
    s(INVALID, 'volume', 'create', 'x', '--size', '1000'),
    s(INVALID, 'volume', 'create', 'x', '--size', '1G', '--format', 'vmdk'),
    s(NOT_FOUND, 'volume', 'create', 'x', '--size', '1G', '--pool', 'nope'),
    s(NOT_FOUND, 'volume', 'create', 'x', '--size', '1G', '--pool', 'Bad!'),
    s(INVALID, 'volume', 'create', '', '--size', '1G'),
    s(INVALID, 'volume', 'create', 'x', '--size', ''),
    s(INVALID, 'volume', 'create', 'x', '--size', '1'.repeat(40)),
    s(INVALID, 'volume', 'info', ''),
    s(INVALID, 'volume', 'ls', '--pool', ''),
    s(OK, 'volume', 'ls'),
    s(OK, 'volume', 'ls', '--pool', 'fast', '--format', 'json'),
    s(NOT_FOUND, 'volume', 'ls', '--pool', 'nope'),
    s(INVALID, 'volume', 'ls', '--pool', 'Bad!'),
    s(OK, 'volume', 'info', 'data'),
    s(OK, 'volume', 'info', 'data', '--format', 'json'),
    s(NOT_FOUND, 'volume', 'info', 'nope'),
    s(INVALID, 'volume', 'info', 'Bad!'),
    s(OK, 'volume', 'resize', 'data', '--size', '96M'),
    s(OK, 'volume', 'resize', 'data', '--size', '96M'),
    s(INVALID, 'volume', 'resize', 'data', '--size', '32M'),
    s(INVALID, 'volume', 'resize', 'data', '--size', 'huge'),
    s(NOT_FOUND, 'volume', 'resize', 'nope', '--size', '1G'),
    s(OK, 'volume', 'convert', 'data', '--format', 'raw'),
    s(INVALID, 'volume', 'convert', 'data', '--format', 'raw'),
    s(INVALID, 'volume', 'convert', 'data', '--format', 'vmdk'),
    s(NOT_FOUND, 'volume', 'convert', 'nope', '--format', 'qcow2'),
    s(OK, 'volume', 'check', 'data'),
    s(OK, 'volume', 'convert', 'data', '--format', 'qcow2'),
    s(OK, 'volume', 'check', 'data'),
    s(OK, 'volume', 'check', 'data', '--format', 'yaml'),
    s(NOT_FOUND, 'volume', 'check', 'nope'),
    s(OK, 'volume', 'export', 'data', 'exported.qcow2'),
    s(CONFLICT, 'volume', 'export', 'data', 'exported.qcow2'),
    s(INVALID, 'volume', 'export', 'data', 'no-such-dir/x.raw'),
    s(INVALID, 'volume', 'export', 'data', 'x.img', '--format', 'vmdk'),
    s(NOT_FOUND, 'volume', 'export', 'nope', 'x.raw'),
    s(OK, 'volume', 'export', 'data', 'exported.raw', '--format', 'raw'),
    s(OK, 'volume', 'import', 'exported.raw', '--name', 'copy'),
    s(OK, 'volume', 'import', 'exported.qcow2', '--name', 'copy2', '--format', 'raw', '--pool', 'fast'),
    s(CONFLICT, 'volume', 'import', 'exported.qcow2', '--name', 'copy'),
    s(INVALID, 'volume', 'import', 'missing.img'),
    s(INVALID, 'volume', 'import', 'exported.qcow2', '--name', 'Bad_Name'),
    s(INVALID, 'volume', 'import', 'exported.qcow2', '--name', 'y', '--format', 'vmdk'),
    s(NOT_FOUND, 'volume', 'import', 'exported.qcow2', '--name', 'y', '--pool', 'nope'),
    s(INVALID, 'volume', 'import', 'pools'),
    s(OK, 'volume', 'ls', '--format', 'yaml'),
    s(OK, 'volume', 'rm', 'copy'),
    s(OK, 'volume', 'rm', 'copy2'),
    s(NOT_FOUND, 'volume', 'rm', 'nope'),
    s(CONFLICT, 'pool', 'rm', 'fast'),
    s(OK, 'volume', 'rm', 'onfast'),
    s(OK, 'pool', 'rm', 'fast'),
    s(NOT_FOUND, 'pool', 'rm', 'fast'),
    s(INVALID, 'pool', 'rm', 'Bad!'),

    // Disks and snapshots of a stopped instance.
    s(OK, 'create', 'vm', ...bootArgs),
    s(OK, 'disk', 'attach', 'vm', 'data'),
    s(CONFLICT, 'disk', 'attach', 'vm', 'data'),
    s(NOT_FOUND, 'disk', 'attach', 'nope', 'data'),
    s(NOT_FOUND, 'disk', 'attach', 'vm', 'nope'),
    s(INVALID, 'disk', 'attach', 'Bad!', 'data'),
    s(INVALID, 'disk', 'attach', 'vm', 'Bad!'),
    s(INVALID, 'disk', 'attach', 'vm', ''),
    s(OK, 'volume', 'ls', '--all'),
    s(OK, 'volume', 'ls', '--all', '--format', 'json'),
    s(CONFLICT, 'volume', 'rm', 'data'),
    s(CONFLICT, 'volume', 'convert', 'data', '--format', 'raw'),
    s(OK, 'snapshot', 'ls', 'vm'),
    s(OK, 'snapshot', 'create', 'vm', 's1'),
    s(CONFLICT, 'snapshot', 'create', 'vm', 's1'),
    s(INVALID, 'snapshot', 'create', 'vm', 'Bad_Snap'),
    s(INVALID, 'snapshot', 'create', 'vm', ''),
    s(INVALID, 'snapshot', 'revert', 'vm', ''),
    s(INVALID, 'snapshot', 'create', 'Bad!', 's2'),
    s(NOT_FOUND, 'snapshot', 'create', 'nope', 's2'),
    s(INVALID, 'snapshot', 'create', 'vm', 's2', '--quiesce'),
    s(INVALID_STATE, 'snapshot', 'create', 'vm', 's2', '--external'),
    s(OK, 'snapshot', 'create', 'vm', 's2'),
    s(OK, 'snapshot', 'ls', 'vm'),
    s(OK, 'snapshot', 'ls', 'vm', '--json'),
    s(NOT_FOUND, 'snapshot', 'ls', 'nope'),
    s(INVALID, 'snapshot', 'ls', 'Bad!'),
    s(OK, 'volume', 'info', 'data'),
    s(INVALID_STATE, 'disk', 'detach', 'vm', 'data'),
    s(OK, 'snapshot', 'revert', 'vm', 's1'),
    s(NOT_FOUND, 'snapshot', 'revert', 'vm', 'nope'),
    s(INVALID, 'snapshot', 'revert', 'vm', 'Bad!'),
    s(NOT_FOUND, 'snapshot', 'revert', 'nope', 's1'),
    s(OK, 'snapshot', 'rm', 'vm', 's2'),
    s(OK, 'snapshot', 'rm', 'vm', 's1'),
    s(NOT_FOUND, 'snapshot', 'rm', 'vm', 's1'),
    s(INVALID, 'snapshot', 'rm', 'vm', 'S1'),
    s(OK, 'disk', 'detach', 'vm', 'data'),
    s(NOT_FOUND, 'disk', 'detach', 'vm', 'data'),
    s(NOT_FOUND, 'disk', 'detach', 'nope', 'data'),
    s(INVALID, 'disk', 'detach', 'vm', 'Bad!'),

    // The same with the guest running: hot-plug, live resize, a snapshot with memory, revert, delete, hot-unplug.
    s(OK, 'start', 'vm'),
    { waitForGuest: 'vm' },
    s(OK, 'disk', 'attach', 'vm', 'data'),
    s(OK, 'volume', 'resize', 'data', '--size', '128M'),
    s(INVALID_STATE, 'volume', 'resize', 'data', '--size', '64M', '--allow-shrink'),
    s(INVALID_STATE, 'volume', 'export', 'data', 'running.qcow2'),
    s(INVALID, 'snapshot', 'create', 'vm', 'live0', '--external'),
    s(OK, 'snapshot', 'create', 'vm', 'live1'),
    s(OK, 'snapshot', 'ls', 'vm'),
    s(OK, 'snapshot', 'revert', 'vm', 'live1'),
    s(OK, 'snapshot', 'rm', 'vm', 'live1'),
    s(OK, 'disk', 'detach', 'vm', 'data'),
    s(OK, 'stop', 'vm', '--force'),
    s(OK, 'delete', 'vm'),
    s(OK, 'volume', 'rm', 'data'),
    s(OK, 'volume', 'ls', '--all'),
  ];
}

/** What differs between the two state directories and runs: the directory itself, dates, moving free space. */
function normalize(text: string, home: string, fs: boolean): string {
  let out = text
    .replaceAll(home, 'HOME')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'DATE')
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/g, 'DATE-TIME')
    .replace(/pid \d+/g, 'pid N')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID');
  if (fs) {
    out = out
      .replace(/"(capacity|allocation|available)": \d+/g, '"$1": N')
      .replace(/^(capacity|allocation|available): \d+$/gm, '$1: N')
      .replace(/\d+(\.\d)? (B|KiB|MiB|GiB|TiB)/g, 'SIZE')
      .replace(/ +/g, ' ');
  }
  return out;
}

interface Entry {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

async function transcript(home: string, mode: 'daemon' | 'local'): Promise<Entry[]> {
  const out: Entry[] = [];
  for (const step of steps(home)) {
    if ('waitForGuest' in step) {
      await waitForText(join(home, 'instances', step.waitForGuest, 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
      continue;
    }
    const r = await virtnode(home, step.args, { cwd: home, env: mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {} });
    const n = (t: string) => normalize(t, home, step.fs === true);
    out.push({ args: step.args.map(n), code: r.code, stdout: n(r.stdout), stderr: n(r.stderr) });
    // Checked as it goes, so a failure names the step.
    expect(r.code, `${mode}: virtnode ${step.args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(step.code);
  }
  return out;
}

// About 320 CLI calls in two modes: each pays a process start, so this file's budget is per file, not per call.
describe('pool, volume, disk and snapshot commands through the daemon and without it', { timeout: 600_000 }, () => {
  // Same-length prefixes: the two state directories' paths have the same length, so tables align alike.
  const viaDaemon = tempHome('virtnode-clsd-');
  const local = tempHome('virtnode-clsl-');
  let daemon: RunningDaemon | undefined;
  let bystander: RunningDaemon | undefined;

  beforeAll(async () => {
    for (const home of [viaDaemon.home, local.home]) mkdirSync(join(home, 'fastdir'));
    daemon = await startDaemon(viaDaemon.home);
    // A daemon on the local run's state directory too: VIRTNODE_NO_DAEMON=1 must leave it alone.
    bystander = await startDaemon(local.home);
  });

  afterAll(async () => {
    for (const home of [viaDaemon.home, local.home]) await virtnode(home, ['delete', '--force', 'vm'], { env: { VIRTNODE_NO_DAEMON: '1' } });
    await daemon?.stop();
    await bystander?.stop();
    viaDaemon.cleanup();
    local.cleanup();
  });

  it('gives the same output, errors and exit codes either way, and the daemon does the work only in daemon mode', async () => {
    const daemonRun = await transcript(viaDaemon.home, 'daemon');
    const localRun = await transcript(local.home, 'local');
    expect(daemonRun).toEqual(localRun);

    // A few outputs spelled out, so equal-but-wrong cannot pass.
    const find = (args: string) => daemonRun.find((e) => e.args.join(' ') === args)!;
    expect(find('volume create data --size 64M').stdout).toBe('Created volume data (qcow2, 64 MiB) in pool default: HOME/pools/default/data.qcow2\n');
    expect(find('volume export data exported.qcow2').stdout).toBe('Exported volume data to HOME/exported.qcow2 (qcow2)\n');
    expect(find('volume import exported.raw --name copy').stdout).toBe('Imported exported.raw as volume copy (raw) in pool default\n');
    expect(find('snapshot create vm live1').stdout).toBe('Created internal snapshot live1 of vm with memory state\n');
    expect(find('disk attach vm data').stdout).toBe('Attached volume data to vm as disk1 (from next start)\n');
    expect(daemonRun.filter((e) => e.args.join(' ') === 'disk attach vm data').map((e) => e.stdout)).toContain('Attached volume data to vm as disk1 (hot-plugged)\n');
    expect(find('pool create p --path relative/dir').stderr).toContain('--path: "relative/dir" is not an absolute path');
    expect(find('volume info Bad!').stderr).toContain('volume: "Bad!" is not a valid name');
    expect(find('snapshot revert vm Bad!').stderr).toContain('snapshot: "Bad!" is not a valid name');

    // The daemon of the first run did the work (copies and snapshots as operations), the second run's daemon none.
    const d = daemon!;
    expect(requestsTo(d, 'POST', '/pools')).toBe(9);
    expect(requestsTo(d, 'POST', '/volumes/data/convert')).toBe(5);
    expect(requestsTo(d, 'POST', '/volumes/import')).toBe(8);
    expect(requestsTo(d, 'POST', '/volumes/data/export')).toBe(6);
    expect(requestsTo(d, 'POST', '/volumes/data/resize')).toBe(6);
    expect(requestsTo(d, 'GET', '/instance-disks')).toBe(3);
    expect(requestsTo(d, 'POST', '/instances/vm/disks')).toBe(6);
    expect(requestsTo(d, 'DELETE', '/instances/vm/disks/data')).toBe(4);
    expect(requestsTo(d, 'POST', '/instances/vm/snapshots')).toBe(9);
    expect(requestsTo(d, 'POST', '/instances/vm/snapshots/live1/revert')).toBe(1);
    expect(requestsTo(d, 'GET', /^\/operations\/[0-9a-f-]+\/wait/)).toBeGreaterThan(0);
    expect(requestsTo(bystander!, 'GET', /^\/(pools|volumes|instance-disks|instances\/vm\/snapshots)/)).toBe(0);
    expect(requestsTo(bystander!, 'POST', /^\/(pools|volumes|instances)/)).toBe(0);
  });

  it('works over --remote (HTTPS and a token): a relative path is made absolute by the CLI before it is sent', async () => {
    const remote = tempHome('virtnode-clsr-');
    let tls: RunningDaemon | undefined;
    try {
      const cert = join(remote.home, 'cert.pem');
      const key = join(remote.home, 'key.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
      const port = await freeLoopbackPort();
      tls = await startDaemon(remote.home, ['--listen', `127.0.0.1:${port}`, '--tls-cert', cert, '--tls-key', key, '--allow-path', remote.home]);
      const token = (await virtnode(remote.home, ['token', 'create', 'cli'])).stdout.trim();
      // The client has no state directory of its own and works in another directory than the daemon.
      const client = join(remote.home, 'client');
      mkdirSync(client);
      const env = { VIRTNODE_TOKEN: token, VIRTNODE_CA: cert, VIRTNODE_HOME: join(remote.home, 'elsewhere') };
      const run = (...args: string[]) => virtnode(remote.home, ['--remote', `https://localhost:${port}`, ...args], { env, cwd: client });

      const created = await run('volume', 'create', 'r1', '--size', '16M');
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toBe(`Created volume r1 (qcow2, 16 MiB) in pool default: ${join(remote.home, 'pools', 'default', 'r1.qcow2')}\n`);
      const exported = await run('volume', 'export', 'r1', 'out.qcow2');
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toBe(`Exported volume r1 to ${join(client, 'out.qcow2')} (qcow2)\n`);
      expect(existsSync(join(client, 'out.qcow2'))).toBe(true);
      const imported = await run('volume', 'import', 'out.qcow2', '--name', 'r2');
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toBe('Imported out.qcow2 as volume r2 (qcow2) in pool default\n');
      const listed = await run('volume', 'ls', '--format', 'json');
      expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((v) => v.name)).toEqual(['r1', 'r2']);
      const missing = await run('snapshot', 'ls', 'nope');
      expect(missing.code, `${missing.stderr}\ndaemon: ${tls.output().slice(-4000)}`).toBe(NOT_FOUND);
      expect(missing.stderr).toBe('error: instance nope does not exist\nhint: see `virtnode list` for the instances there are\n');
      const relative = await run('pool', 'create', 'p', '--path', 'relative/dir');
      expect(relative.code).toBe(INVALID);
      expect(relative.stderr).toContain('--path: "relative/dir" is not an absolute path');
      expect(requestsTo(tls, 'POST', '/volumes/r1/export')).toBe(1);
      expect(requestsTo(tls, 'POST', '/volumes/import')).toBe(1);
      expect(requestsTo(tls, 'POST', '/pools')).toBe(1);
    } finally {
      await tls?.stop();
      remote.cleanup();
    }
  });

  it('with the socket a killed daemon left, the commands run in-process and answer as without a daemon', async () => {
    const stale = tempHome('virtnode-clss-');
    let dead: RunningDaemon | undefined;
    try {
      dead = await startDaemon(stale.home);
      await dead.stop('SIGKILL');
      expect(existsSync(dead.socket)).toBe(true);
      const run = async (env: Record<string, string>, ...args: string[]) => {
        const r = await virtnode(stale.home, args, { env, cwd: stale.home });
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      };
      const created = await run({}, 'volume', 'create', 'v1', '--size', '16M');
      expect(created).toEqual({ code: 0, stdout: `Created volume v1 (qcow2, 16 MiB) in pool default: ${join(stale.home, 'pools', 'default', 'v1.qcow2')}\n`, stderr: '' });
      for (const args of [['volume', 'ls'], ['volume', 'info', 'v1', '--format', 'json'], ['snapshot', 'ls', 'nope'], ['disk', 'attach', 'nope', 'v1']]) {
        expect(await run({}, ...args)).toEqual(await run({ VIRTNODE_NO_DAEMON: '1' }, ...args));
      }
      expect((await run({}, 'volume', 'rm', 'v1')).code).toBe(0);
    } finally {
      await dead?.stop();
      stale.cleanup();
    }
  });
});
