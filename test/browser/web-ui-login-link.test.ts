import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { explainOnFailure, launchBrowser, pageProblems, screenshot } from './helpers/browser.ts';

function post(url: string, ca: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body === undefined ? 'GET' : 'POST', ca, headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : payload);
  });
}

/**
 * A newcomer's way into the web UI: `virtnode daemon --listen` without a certificate makes its own (and says its
 * fingerprint), and `virtnode ui` prints a link that opens the UI logged in, once.
 */
describe('the web UI without a hand-made certificate or a pasted token', () => {
  const { home, cleanup } = tempHome('virtnode-ui-link-');
  let daemon: RunningDaemon | undefined;
  let port = 0;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  const certPath = join(home, 'tls', 'daemon.crt');

  beforeAll(async () => {
    browser = await launchBrowser({ ignoreHTTPSErrors: true });
    port = await freeLoopbackPort();
  });
  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    cleanup();
  });

  it('refuses half a certificate, and `virtnode ui` without a daemon on TCP, saying what to do', async () => {
    const half = await virtnode(home, ['daemon', '--listen', `127.0.0.1:${port}`, '--tls-cert', join(home, 'nope.pem')]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('--tls-key: give both --tls-cert and --tls-key, or neither');
    const none = await virtnode(home, ['ui']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no daemon runs here');
    const socketOnly = await startDaemon(home, ['--log-level', 'warn']);
    try {
      const refused = await virtnode(home, ['ui']);
      expect(refused.code).toBe(5); // INVALID_STATE
      expect(refused.stderr).toContain('this daemon does not listen on TCP');
    } finally {
      await socketOnly.stop();
    }
  });

  it('makes its own certificate once (key 0600), logs its fingerprint, and keeps it across restarts', async () => {
    daemon = await startDaemon(home, ['--listen', `127.0.0.1:${port}`]);
    const cert = readFileSync(certPath, 'utf8');
    const fingerprint = new X509Certificate(cert).fingerprint256;
    expect(statSync(join(home, 'tls', 'daemon.key')).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(cert).subjectAltName).toContain('IP Address:127.0.0.1');
    // The daemon answers before its logger has written the line out (pino writes asynchronously): wait for it.
    const started = daemon;
    await expect.poll(() => started.logLines().find((l) => l['msg'] === 'virtnode daemon ready')?.['tlsFingerprint256'], { timeout: 15_000 }).toBe(fingerprint);
    await daemon.stop();
    daemon = await startDaemon(home, ['--listen', `127.0.0.1:${port}`]);
    expect(readFileSync(certPath, 'utf8')).toBe(cert);
    // TLS and a token still: the certificate changes nothing of that.
    expect((await post(`https://127.0.0.1:${port}/instances`, cert, undefined)).status).toBe(401);
  });

  it('`virtnode ui` prints a link that logs a browser in once; the code never reaches the server log', async () => {
    const cert = readFileSync(certPath, 'utf8');
    const printed = await virtnode(home, ['ui']);
    expect(printed.code, printed.stderr).toBe(0);
    const url = printed.stdout.trim();
    expect(url).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${port}/ui/#login=[A-Za-z0-9_-]{43}$`));
    expect(printed.stderr).toContain(new X509Certificate(cert).fingerprint256);
    const code = url.split('#login=')[1]!;

    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
    await page.goto(url);
    await page.getByText('No instances yet.').waitFor();
    expect(new URL(page.url()).hash).toBe('#/'); // the code left the address bar (and the history entry)
    const session = await page.evaluate(() => sessionStorage.getItem('virtnode.token'));
    expect(session).toMatch(/^vn_/);
    await screenshot(page, 'login-link-01-logged-in');
    expect(problems).toEqual([]);
    await page.close();

    // The token the browser got is a token of its own, listed, ending by itself; it works, the code does not again.
    const tokens = JSON.parse((await virtnode(home, ['token', 'ls', '--format', 'json'])).stdout) as Array<{ name: string; expiresAt: string | null }>;
    expect(tokens).toEqual([{ name: expect.stringMatching(/^ui-[0-9a-f]{8}$/), scope: 'admin', createdAt: expect.any(String), expiresAt: expect.any(String), lastUsedAt: expect.anything() }]);
    expect((await post(`https://127.0.0.1:${port}/instances`, cert, undefined, session!)).status).toBe(200);
    const again = await post(`https://127.0.0.1:${port}/ui-logins/redeem`, cert, { code });
    expect(again.status).toBe(401);
    expect(again.body.error.message).toBe('the login link is used or expired');

    const second = await browser.context.newPage();
    await second.goto(url);
    await second.getByRole('alert').filter({ hasText: 'the login link is used or expired' }).waitFor();
    await second.close();
    expect(daemon!.output()).not.toContain(code);
  });
});
