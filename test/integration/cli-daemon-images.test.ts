/**
 * The image, template, clone and host commands give the same output, errors and exit codes through the daemon
 * as without it: each group's steps run once with a daemon on the state directory and once with
 * VIRTNODE_NO_DAEMON=1 on the same directory (each run leaves it as it found it), and the transcripts are
 * compared. The daemon's request log shows it did the work in the first run and saw nothing of the second.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { REPO_ROOT, VIRTNODE_BIN, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { requestsTo, runIn, transcript, type CliMode, type StepResult } from '../helpers/cli-modes.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { debianImage } from '../helpers/debian-image.ts';
import { TestHttpServer, createQcow2, sha256 } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

describe('image, template, clone and host commands through the daemon and without it', () => {
  const { home, cleanup } = tempHome('virtnode-cli-images-');
  const fixtures = mkdtempSync(join(tmpdir(), 'virtnode-cli-images-fx-'));
  let daemon: RunningDaemon | undefined;
  let server: TestHttpServer | undefined;
  let pulledSha = '';
  let port = 0;

  /** What differs between two runs of the same steps: dates, ids, rates, elapsed times. */
  const normalize = (text: string) =>
    text
      .replaceAll(home, 'HOME')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID')
      .replace(/52:54:00(:[0-9a-f]{2}){3}/g, 'MAC')
      .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'DATE')
      .replace(/\[\s*[\d.]+ s\]/g, '[T]')
      .replace(/[\d.]+ [KMGT]?i?B\/s/g, 'RATE')
      .replace(/ETA \d+(:\d+)+/g, 'ETA')
      .replace(/pid \d+/g, 'pid N')
      .replace(/"pid": \d+|pid: \d+/g, 'pid: N')
      .replace(/"durationMs": \d+|durationMs: \d+/g, 'durationMs: N')
      .replace(/in \d+ ms/g, 'in N ms');
  /** Progress lines: on a pipe one line each 10% (which steps a transfer crosses depends on how the bytes arrive). */
  const progressLines = (steps: StepResult[], label: string) => steps.flatMap((s) => s.stderr.split('\n').filter((l) => l.startsWith(`${label} `)));
  const withoutProgress = (steps: StepResult[], label: string) =>
    steps.map((s) => ({ ...s, stderr: s.stderr.split('\n').filter((l) => !l.startsWith(`${label} `) || / done$/.test(l)).join('\n') }));
  /** Runs the steps through the daemon, then locally, and returns both with the daemon's request counts meanwhile. */
  const bothModes = async (steps: string[][], count: () => number) => {
    const before = count();
    const viaDaemon = await transcript('daemon', home, steps, normalize);
    await daemon!.logCaughtUp();
    const afterDaemon = count();
    const local = await transcript('local', home, steps, normalize);
    keep(steps[0]!.slice(0, 2).join('-'), viaDaemon);
    await daemon!.logCaughtUp();
    return { viaDaemon, local, daemonRequests: afterDaemon - before, localRequests: count() - afterDaemon };
  };
  /** The daemon-mode transcript as a test artifact, to read what the commands print. */
  const keep = (what: string, steps: StepResult[]) => {
    mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'test-results', `cli-daemon-${what}.txt`), steps.map((s) => `$ virtnode ${s.args.join(' ')}  [exit ${s.code}]\n${s.stdout}${s.stderr}`).join('\n'));
  };
  const ok = async (mode: CliMode, args: string[]) => {
    const r = await runIn(mode, home, args);
    expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    await createQcow2(join(fixtures, 'disk.qcow2'), 0x61);
    const pulled = await createQcow2(join(fixtures, 'pulled.qcow2'), 0x62);
    pulledSha = sha256(pulled);
    server = await TestHttpServer.start();
    server.serve('/img/pulled.qcow2', pulled);
    server.serve('/img/other.qcow2', await createQcow2(join(fixtures, 'other.qcow2'), 0x63));
    server.serve('/img/ctrl-c-daemon.qcow2', await createQcow2(join(fixtures, 'ctrl-c-daemon.qcow2'), 0x64));
    server.serve('/img/ctrl-c-local.qcow2', await createQcow2(join(fixtures, 'ctrl-c-local.qcow2'), 0x65));
    // TLS on loopback too, so the same commands can run over --remote with a token.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(fixtures, 'key.pem'), '-out', join(fixtures, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    port = await freeLoopbackPort();
    // Clients over TCP may name files under the fixtures only (the images the remote steps import), and pull from
    // the test's server on loopback.
    daemon = await startDaemon(home, ['--listen', `127.0.0.1:${port}`, '--tls-cert', join(fixtures, 'cert.pem'), '--tls-key', join(fixtures, 'key.pem'), '--allow-path', fixtures, '--allow-private-pulls']);
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await server?.close();
    cleanup();
    rmSync(fixtures, { recursive: true, force: true });
  });

  it('image import, pull, ls, info and rm: same output, errors and exit codes', async () => {
    const disk = relative(process.cwd(), join(fixtures, 'disk.qcow2')); // relative: the CLI makes it absolute
    const pulled = server!.url('/img/pulled.qcow2');
    const steps = [
      ['image', 'import', disk, '--name', 'disk'],
      ['image', 'import', disk, '--name', 'disk'],
      ['image', 'import', disk, '--name', 'disk2'],
      ['image', 'pull', pulled, '--sha256', pulledSha],
      ['image', 'pull', server!.url('/img/other.qcow2')],
      ['image', 'ls'],
      ['image', 'ls', '--format', 'json'],
      ['image', 'ls', '--format', 'yaml'],
      ['image', 'info', 'disk'],
      ['image', 'info', 'pulled', '--format', 'json'],
      ['image', 'info', 'other', '--format', 'yaml'],
      ['image', 'info', 'nope'],
      ['image', 'info', 'Bad_Name'],
      ['image', 'ls', '--format', 'xml'],
      ['image', 'import', join(fixtures, 'missing.qcow2')],
      ['image', 'import', disk, '--name', 'Bad_Name'],
      ['image', 'import', join(fixtures, 'disk.qcow2'), '--name', 'other'],
      ['image', 'pull', 'ftp://example.org/a.qcow2'],
      ['image', 'pull', 'not a url'],
      ['image', 'pull', pulled, '--sha256', 'xyz'],
      ['image', 'pull', pulled, '--name', 'Bad_Name'],
      ['image', 'pull', pulled, '--name', 'disk'],
      ['image', 'pull', pulled, '--name', 'wrong', '--sha256', '0'.repeat(64)],
      ['image', 'pull', server!.url('/img/missing.qcow2')],
      ['image', 'build', 'debian-13'],
      ['image', 'build', 'debian-12', '--size', '10M'],
      ['image', 'build', 'debian-12', '--name', 'Bad_Name'],
      ['image', 'rm', 'nope'],
      ['image', 'rm', 'disk2'],
      ['image', 'rm', 'disk'],
      ['image', 'rm', 'pulled'],
      ['image', 'rm', 'other'],
      ['image', 'ls'],
    ];
    const count = () => requestsTo(daemon!, 'POST', /^\/images\//) + requestsTo(daemon!, 'GET', /^\/images/) + requestsTo(daemon!, 'DELETE', /^\/images\//);
    const { viaDaemon, local, daemonRequests, localRequests } = await bothModes(steps, count);
    expect(withoutProgress(viaDaemon, 'Downloading')).toEqual(withoutProgress(local, 'Downloading'));
    expect(viaDaemon.map((s) => s.code)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 2, 2, 2, 4, 2, 2, 2, 2, 4, 2, 3, 2, 2, 2, 3, 0, 0, 0, 0, 0]);
    // Download progress: the same lines (a line each 10%, then the done line), computed where the bytes arrive.
    for (const lines of [progressLines(viaDaemon, 'Downloading'), progressLines(local, 'Downloading')]) {
      expect(lines.length).toBeGreaterThanOrEqual(2);
      for (const line of lines) expect(line).toMatch(/^Downloading +\d+% {2}[\d.]+ (B|KiB|MiB) \/ [\d.]+ (B|KiB|MiB) {2}RATE( {2}(ETA|done))?$/);
    }
    expect(viaDaemon[3]!.stdout).toMatch(/^Pulled image pulled \(qcow2, 64 MiB virtual/);
    expect(viaDaemon[4]!.stderr).toContain('warning: the download is unverified');
    expect(viaDaemon[2]!.stdout).toContain('same content as image disk, stored once');
    expect(viaDaemon[14]!.stderr).toBe(`error: FILE: ${join(fixtures, 'missing.qcow2')} does not exist or is not a readable file\n`);
    expect(viaDaemon[17]!.stderr).toMatch(/^error: URL: "ftp:\/\/example.org\/a.qcow2" is not an http or https URL/);
    expect(viaDaemon[25]!.stderr).toMatch(/image size must be a whole number of MiB, at least 1 GiB/);
    expect(viaDaemon.at(-1)!.stdout).toBe('NAME  FORMAT  VIRTUAL  SIZE  SHA256  SOURCE\n');
    // The daemon did the work in the first run (imports, pulls, reads, removals) and saw nothing of the second.
    expect(requestsTo(daemon!, 'POST', '/images/import')).toBeGreaterThanOrEqual(4);
    expect(requestsTo(daemon!, 'POST', '/images/pull')).toBeGreaterThanOrEqual(4);
    expect(daemonRequests).toBeGreaterThan(20);
    expect(localRequests).toBe(0);
  }, 180_000);

  it('image build stores the cached build the same way through the daemon as without it', async () => {
    debianImage(); // fails with the command to run if setup has not built it
    const results = [];
    const before = requestsTo(daemon!, 'POST', '/images/build');
    for (const mode of ['daemon', 'local'] as const) {
      const r = await runIn(mode, home, ['image', 'build', 'debian-12', '--name', 'deb']);
      results.push({ code: r.code, stdout: normalize(r.stdout), stderr: normalize(r.stderr) });
      await ok(mode, ['image', 'rm', 'deb']);
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.code).toBe(0);
    expect(results[0]!.stderr).toContain('Reusing the cached build');
    expect(results[0]!.stdout).toMatch(/^Stored image deb \(qcow2, 4 GiB virtual/);
    expect(requestsTo(daemon!, 'POST', '/images/build') - before).toBe(1);
  }, 180_000);

  it('template create, ls, info [--verify], rm and clone: same output, errors and exit codes', async () => {
    const prepare = async (mode: CliMode) => {
      await ok(mode, ['create', 'tsrc', '--disk-size', '64M', ...bootArgs]);
      await ok(mode, ['create', 'csrc', '--disk-size', '64M', ...bootArgs]);
    };
    const steps = [
      ['template', 'create', 'tsrc', 'golden'],
      ['template', 'ls'],
      ['template', 'ls', '--format', 'json'],
      ['template', 'info', 'golden'],
      ['template', 'info', 'golden', '--verify', '--format', 'yaml'],
      ['clone', 'golden', 'c-full'],
      ['clone', 'golden', 'c-link', '--linked', '--format', 'json'],
      ['clone', 'csrc', 'c-inst', '--format', 'yaml'],
      ['clone', 'golden', 'c-run', '--linked', '--start'],
      ['template', 'info', 'golden', '--format', 'json'],
      ['clone', 'nosuch', 'x'],
      ['clone', 'golden', 'golden'],
      ['clone', 'golden', 'c-full'],
      ['clone', 'Bad_Name', 'x'],
      ['clone', 'golden', 'x', '--format', 'xml'],
      ['clone', 'c-run', 'x'],
      ['template', 'create', 'nosuch'],
      ['template', 'create', 'csrc', 'golden'],
      ['template', 'create', 'csrc', 'c-full'],
      ['template', 'create', 'Bad_Name'],
      ['template', 'info', 'nope'],
      ['template', 'info', 'Bad_Name'],
      ['template', 'rm', 'nope'],
      ['template', 'rm', 'golden'],
      ['template', 'ls', '--format', 'xml'],
    ];
    const teardown = async (mode: CliMode) => {
      await ok(mode, ['delete', '--force', 'c-run']);
      for (const name of ['c-full', 'c-link', 'c-inst', 'csrc']) await ok(mode, ['delete', name]);
      return [await runIn(mode, home, ['template', 'rm', 'golden']), await runIn(mode, home, ['template', 'ls'])];
    };
    const count = () => requestsTo(daemon!, 'POST', /^\/templates|\/clone$/) + requestsTo(daemon!, 'GET', /^\/templates/) + requestsTo(daemon!, 'DELETE', /^\/templates/);
    const run = async (mode: CliMode) => {
      await prepare(mode);
      const before = count();
      const out = await transcript(mode, home, steps.slice(0, 9), normalize);
      await waitForText(join(home, 'instances', 'c-run', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
      out.push(...(await transcript(mode, home, steps.slice(9), normalize)));
      keep(`template-clone-${mode}`, out);
      const end = await teardown(mode);
      out.push(...end.map((r) => ({ ...r, stdout: normalize(r.stdout), stderr: normalize(r.stderr) })));
      return { out, requests: count() - before };
    };
    const viaDaemon = await run('daemon');
    const local = await run('local');
    expect(viaDaemon.out).toEqual(local.out);
    expect(viaDaemon.out.map((s) => s.code)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 4, 2, 2, 5, 3, 4, 4, 2, 3, 2, 3, 4, 2, 0, 0]);
    const [made, , , , verified, full, linked, fromInstance, started] = viaDaemon.out;
    expect(made!.stdout).toMatch(/^Template golden made of tsrc; sealed offline/);
    expect(made!.stderr).toMatch(/^\[T\] seal +offline \(sealing appliance\)/m);
    expect(made!.stderr).toMatch(/^\[T\] store +HOME\/templates\/golden\//m);
    expect(verified!.stdout).toContain('unchanged: true');
    expect(full!.stderr).toMatch(/^copying +\d+% .* done$/m);
    expect(full!.stdout).toMatch(/^Cloned template golden into c-full: full copy\n/);
    expect(JSON.parse(linked!.stdout)).toMatchObject({ name: 'c-link', autostart: false, clone: { source: 'golden', from: 'template', mode: 'linked', seal: null } });
    expect(fromInstance!.stdout).toMatch(/method: offline/);
    expect(started!.stdout).toMatch(/^Cloned template golden into c-run, running: linked clone/);
    expect(viaDaemon.out.at(-1)!.stdout).toBe('NAME  SOURCE  SIZE  SEALED  CLONES  CREATED\n');
    expect(viaDaemon.requests).toBeGreaterThan(15);
    expect(local.requests).toBe(0);
  }, 300_000);

  it('host check: the same report through the daemon (its host) as without it', async () => {
    await runIn('local', home, ['host', 'check']); // the KVM probe verdict is cached once for both runs
    const capture = relative(process.cwd(), join(REPO_ROOT, 'test/fixtures/cpuinfo/intel-xeon-vmx.txt'));
    const steps = [['host', 'check'], ['host', 'check', '--json'], ['host', 'check', '--cpuinfo', capture], ['host', 'check', '--cpuinfo', '/nonexistent/cpuinfo']];
    const { viaDaemon, local, daemonRequests, localRequests } = await bothModes(steps, () => requestsTo(daemon!, 'GET', /^\/host\/check/));
    expect(viaDaemon).toEqual(local);
    expect(viaDaemon.map((s) => s.code)).toEqual([0, 0, 0, 3]);
    expect(viaDaemon[2]!.stdout).toMatch(/^PASS {2}Hardware virtualization: vmx \(Intel VT-x\) \(from .*intel-xeon-vmx.txt\)$/m);
    expect(daemonRequests).toBe(4);
    expect(localRequests).toBe(0);
  }, 120_000);

  it('over --remote with a token: the same output and errors as locally', async () => {
    const created = await runIn('local', home, ['token', 'create', 'images-ci']);
    expect(created.code, created.stderr).toBe(0);
    const env = { VIRTNODE_TOKEN: created.stdout.trim(), VIRTNODE_CA: join(fixtures, 'cert.pem'), VIRTNODE_HOME: join(fixtures, 'elsewhere') };
    const disk = relative(process.cwd(), join(fixtures, 'disk.qcow2'));
    const steps = [
      ['image', 'import', disk, '--name', 'rdisk'],
      ['image', 'pull', server!.url('/img/pulled.qcow2'), '--sha256', pulledSha, '--name', 'rpull'],
      ['image', 'ls'],
      ['image', 'info', 'rdisk', '--format', 'json'],
      ['image', 'info', 'nope'],
      ['image', 'rm', 'rdisk'],
      ['image', 'rm', 'rpull'],
      ['template', 'ls', '--format', 'json'],
      ['template', 'info', 'nope'],
      ['clone', 'nosuch', 'x'],
      ['host', 'check', '--json'],
    ];
    const before = requestsTo(daemon!, 'POST', '/images/import');
    const remote: StepResult[] = [];
    for (const step of steps) {
      const r = await virtnode(home, ['--remote', `https://localhost:${port}`, ...step], { env });
      remote.push({ args: step, code: r.code, stdout: normalize(r.stdout), stderr: normalize(r.stderr) });
    }
    const local = await transcript('local', home, steps, normalize);
    expect(withoutProgress(remote, 'Downloading')).toEqual(withoutProgress(local, 'Downloading'));
    expect(remote.map((s) => s.code)).toEqual([0, 0, 0, 0, 3, 0, 0, 0, 3, 3, 0]);
    expect(progressLines(remote, 'Downloading').at(-1)).toMatch(/^Downloading 100% .* done$/);
    expect(requestsTo(daemon!, 'POST', '/images/import') - before).toBe(1);
    expect((await runIn('local', home, ['token', 'revoke', 'images-ci'])).code).toBe(0);
  }, 120_000);

  it('Ctrl-C stops a pull the same way: through the daemon it cancels the operation, and both say what was kept', async () => {
    /** The CLI as a child we can interrupt once the download is under way (its first progress line after 0%). */
    const interrupted = (mode: CliMode, url: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(VIRTNODE_BIN, ['image', 'pull', url], { env: { ...process.env, VIRTNODE_HOME: home, ...(mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let sent = false;
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (!sent && /^Downloading +[1-9]\d*%/m.test(stderr)) {
            sent = true;
            child.kill('SIGINT');
          }
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    server!.throttle(128 * 1024);
    const cancels = requestsTo(daemon!, 'DELETE', /^\/operations\//);
    try {
      const results = [];
      for (const mode of ['daemon', 'local'] as const) {
        const r = await interrupted(mode, server!.url(`/img/ctrl-c-${mode}.qcow2`));
        const error = r.stderr.split('\n').filter((l) => !l.startsWith('Downloading ')).join('\n');
        results.push({ code: r.code, stdout: r.stdout, error: error.replaceAll(`ctrl-c-${mode}`, 'ctrl-c').replace(/after [\d.]+ KiB/, 'after N KiB') });
      }
      expect(results[0]).toEqual(results[1]);
      expect(results[0]).toEqual({ code: 7, stdout: '', error: `error: download of ${server!.url('/img/ctrl-c.qcow2')} was interrupted after N KiB of 576 KiB\nhint: run the same command again to resume it\n` });
      expect((await runIn('local', home, ['image', 'ls', '--format', 'json'])).stdout).toBe('[]\n');
      expect(requestsTo(daemon!, 'DELETE', /^\/operations\//) - cancels).toBe(1); // the daemon-mode Ctrl-C cancelled its operation
    } finally {
      server!.throttle(undefined);
    }
  }, 120_000);
});
