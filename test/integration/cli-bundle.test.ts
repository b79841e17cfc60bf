/**
 * The CLI as `npm run build` bundles it (dist/virtnode.js, run by bin/virtnode) still finds the files it runs or
 * serves at run time (the metadata responder QEMU starts for NoCloud over HTTP, the web UI), and a plain command
 * loads that one file and nothing of the daemon.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, qemuPidsUnder, tempHome, virtnode } from '../helpers/cli.ts';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { createQcow2 } from '../helpers/http-server.ts';

function get(socket: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the bundled CLI (dist/virtnode.js)', () => {
  const { home, cleanup } = tempHome('virtnode-bundle-');
  let daemon: RunningDaemon | undefined;
  afterAll(async () => {
    await daemon?.stop();
    cleanup();
  });

  it('gives QEMU the bundled metadata responder, which serves the seed', async () => {
    await createQcow2(join(home, 'blank.qcow2'), 0x44);
    expect((await virtnode(home, ['image', 'import', join(home, 'blank.qcow2'), '--name', 'blank'])).code).toBe(0);
    const r = await virtnode(home, ['launch', 'blank', '--name', 'hs', '--memory', '128M', '--seed', 'http', '--no-wait'], { env: { VIRTNODE_NO_DAEMON: '1' } });
    expect(r.code, r.stderr).toBe(0);
    const [pid] = qemuPidsUnder(home);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const guestfwd = /guestfwd=tcp:[\d.]+:80-cmd:'([^']+)' '([^']+)' '([^']+)'/.exec(argv.join(' '));
    expect(guestfwd, argv.join(' ')).not.toBeNull();
    const [, node, responder, seedDir] = guestfwd!;
    expect(responder).toBe(join(REPO_ROOT, 'dist', 'metadata-responder.js'));
    const answer = spawnSync(node!, [responder!, seedDir!], { input: 'GET /meta-data HTTP/1.0\r\n\r\n', encoding: 'utf8', timeout: 10_000 });
    expect(answer.stdout).toMatch(/^HTTP\/1\.0 200 OK\r\n/);
    expect(answer.stdout).toContain('local-hostname: hs');
    expect((await virtnode(home, ['delete', '--force', 'hs'])).code).toBe(0);
  });

  it('serves the built web UI from dist/web-ui', async () => {
    expect(existsSync(join(REPO_ROOT, 'dist', 'web-ui', 'index.html')), 'run npm run build first').toBe(true);
    daemon = await startDaemon(home);
    const page = await get(daemon.socket, '/ui/');
    expect(page.status).toBe(200);
    expect(page.text).toBe(readFileSync(join(REPO_ROOT, 'dist', 'web-ui', 'index.html'), 'utf8'));
  });

  it('`virtnode list` reads only the build (dist/virtnode.js and its vendored libraries), no npm package, no TLS, no undici', async () => {
    // Node's module hooks see every file and package loaded (import and require); its own list, the built-ins.
    const hook = join(home, 'load-report.mjs');
    writeFileSync(
      hook,
      [
        "import { registerHooks } from 'node:module';",
        "import { writeFileSync } from 'node:fs';",
        'const loaded = [];',
        'registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });',
        "process.on('exit', () => writeFileSync(process.env.LOAD_REPORT, JSON.stringify({ loaded, builtins: process.moduleLoadList })));",
      ].join('\n'),
    );
    expect(daemon, 'the daemon of the test before').toBeDefined();
    for (const env of [{}, { VIRTNODE_NO_DAEMON: '1' }]) {
      const report = join(home, 'load-report.json');
      const r = await virtnode(home, ['list'], { env: { ...env, NODE_OPTIONS: `--import=${hook}`, LOAD_REPORT: report } });
      expect(r.code, r.stderr).toBe(0);
      const { loaded, builtins } = JSON.parse(readFileSync(report, 'utf8')) as { loaded: string[]; builtins: string[] };
      // The API's endpoint tables are TypeBox schemas (and the in-process application reads YAML): their vendored
      // copies in dist/vendor, never a package from node_modules.
      const files = loaded.filter((url) => !url.startsWith('node:'));
      expect(files[0], JSON.stringify(env)).toBe(`file://${join(REPO_ROOT, 'dist', 'virtnode.js')}`);
      expect(files.filter((url) => !url.startsWith(`file://${join(REPO_ROOT, 'dist', 'vendor')}/`)).slice(1), JSON.stringify(env)).toEqual([]);
      expect(builtins.filter((m) => /^NativeModule (https|tls|_tls_wrap)$|undici/.test(m)), JSON.stringify(env)).toEqual([]);
    }
  });
});
