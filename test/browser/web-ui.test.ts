import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { join } from 'node:path';
import { qemuPidsUnder, tempHome, virtnode } from '../helpers/cli.ts';
import { createQcow2 } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';
import { launchBrowser, pageProblems, screenshot } from './helpers/browser.ts';
import { startUiDaemon, type UiDaemon } from './helpers/ui-daemon.ts';

const guest = testGuest();
/** The kernel also writes to the VGA console (tty0), so the graphical console has something to show; the
 * last console= stays ttyS0, where /init runs its shell. */
const CMDLINE = `console=tty0 ${guest.cmdline.replace(/\bquiet\b/, '')}`.replace(/\s+/g, ' ').trim();
const BOOT_TIMEOUT_MS = 90_000;

/** A GET to the daemon's TLS port (its certificate is self-signed). */
function get(url: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Text of the xterm.js screen (its DOM renderer's rows). */
const terminalText = (page: Page) => page.locator('.xterm-rows').innerText();

/** How many distinct colours the noVNC canvas shows (sampled), read in the page. */
async function canvasColours(page: Page): Promise<number> {
  // Runs in the page (a string, so this file needs no DOM types).
  return page.evaluate(`(() => {
    const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
    if (canvas === null || canvas.width === 0) return 0;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return colours.size;
  })()`);
}

describe('web UI in Chromium against the daemon: launch, live state, serial and VNC consoles, stop, delete', () => {
  const { home, cleanup } = tempHome('virtnode-browser-');
  let daemon: UiDaemon;
  let browser: { context: BrowserContext; close: () => Promise<void> };

  beforeAll(async () => {
    daemon = await startUiDaemon(home);
    browser = await launchBrowser({ ignoreHTTPSErrors: true });
  });
  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    cleanup();
  });

  it('serves the UI with a strict Content-Security-Policy and asks for a token over TCP', async () => {
    const response = await get(`${daemon.url}/ui/`);
    expect(response.status).toBe(200);
    const csp = String(response.headers['content-security-policy'] ?? '');
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect((await get(`${daemon.url}/instances`)).status).toBe(401);

    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    await page.goto(`${daemon.url}/ui/`);
    await page.getByLabel('API token').fill('wrong-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').innerText()).toMatch(/token/);
    await page.getByLabel('API token').fill(daemon.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('No instances yet.').waitFor();
    await screenshot(page, '01-empty-list');
    // Only the two 401s of the login attempts; nothing refused by the CSP, no script errors.
    expect(problems.filter((p) => !/401/.test(p))).toEqual([]);
    await page.close();
  });

  it('the launch form checks the cloud-config as it is typed, with line numbers, and refuses to launch a broken one', { timeout: 120_000 }, async () => {
    const image = join(home, 'tiny.qcow2');
    await createQcow2(image);
    const imported = await virtnode(home, ['image', 'import', image, '--name', 'tiny']);
    expect(imported.code, imported.stderr).toBe(0);

    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    await page.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(daemon.token)})`);
    await page.goto(`${daemon.url}/ui/#/launch`);
    await expect.poll(() => page.locator('select[name=image]').inputValue()).toBe('tiny');
    const editor = page.getByLabel('cloud-config');
    const status = page.getByTestId('cloud-config-status');
    const launch = page.getByRole('button', { name: 'Launch' });

    await editor.fill('#cloud-config\npackages: [nginx\n');
    await expect.poll(() => status.innerText()).toMatch(/line \d+:\d+/);
    expect(await editor.getAttribute('aria-invalid')).toBe('true');
    expect(await launch.isDisabled()).toBe(true);
    await screenshot(page, '08-cloud-config-invalid');

    await editor.fill('#cloud-config\nusers:\n  - name: ada\n    sudo: 42\n');
    await expect.poll(() => status.innerText()).toMatch(/line 4:\d+ users\[0\]\.sudo/);
    expect(await launch.isDisabled()).toBe(true);

    await editor.fill('#cloud-config\npackages: [nginx]\n');
    await expect.poll(() => status.innerText()).toBe('valid cloud-config');
    expect(await editor.getAttribute('aria-invalid')).toBe('false');
    expect(await launch.isDisabled()).toBe(false);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('launch from the form, watch the state live, type in the serial console, see the VNC screen, stop, delete', { timeout: 300_000 }, async () => {
    const watcher = await browser.context.newPage(); // a second tab on the list: it must follow without reloads
    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    for (const p of [watcher, page]) {
      // As after the login of the first test: the token in the tab's session storage.
      await p.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(daemon.token)})`);
      await p.goto(`${daemon.url}/ui/`);
    }
    await watcher.getByTestId('live').getByText('live').waitFor();

    // Launch: the tiny guest boots from a kernel on the host.
    await page.getByRole('link', { name: 'Launch' }).click();
    await page.getByLabel('a kernel on the host').check();
    await page.getByLabel('Name').fill('ui1');
    // The bzImage (not the PVH vmlinux): booted through the regular protocol, the kernel knows the VGA text
    // screen and prints on it, so the graphical console shows the guest and not only the firmware.
    await page.getByLabel('Kernel', { exact: true }).fill(guest.vmlinuz);
    await page.getByLabel('Initrd').fill(guest.initrd);
    await page.getByLabel('Kernel command line').fill(CMDLINE);
    await page.getByLabel('Memory').fill('256M');
    await screenshot(page, '02-launch-form');
    await page.getByRole('button', { name: 'Launch' }).click();
    try {
      await page.waitForURL(/#\/instances\/ui1/);
    await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 30_000 }).toBe('running');

    const row = watcher.getByTestId('instance-ui1');
    await expect.poll(() => row.getByTestId('state').innerText(), { timeout: 30_000 }).toBe('running');
    await screenshot(watcher, '03-list-running');

    // Serial console: scroll-back from the console log, then a live shell.
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await expect.poll(() => page.getByTestId('serial-status').innerText(), { timeout: 15_000 }).toBe('connected');
    await expect.poll(() => terminalText(page), { timeout: BOOT_TIMEOUT_MS, interval: 500 }).toContain(TEST_GUEST_READY_MARKER);
    await page.getByTestId('serial-terminal').click();
    await page.keyboard.type('echo answer-$((6*7))\n');
    await expect.poll(() => terminalText(page), { timeout: 20_000 }).toMatch(/^answer-42$/m);
    await screenshot(page, '04-serial-console');

    // Graphical console: noVNC draws the guest's VGA screen (kernel messages on tty0): not one flat colour.
    await page.getByRole('tab', { name: 'Graphical console' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').innerText(), { timeout: 15_000 }).toBe('connected');
    await expect.poll(() => canvasColours(page), { timeout: 30_000, interval: 500 }).toBeGreaterThan(1);
    await screenshot(page, '05-vnc-console');

    // Charts from the daemon's /metrics: CPU (a rate, after two samples) and memory of the QEMU process.
    await page.getByRole('tab', { name: 'Metrics' }).click();
    await expect.poll(() => page.getByTestId('chart-cpu').locator('strong').innerText(), { timeout: 20_000 }).toMatch(/^\d+ %$/);
    await expect.poll(() => page.getByTestId('chart-memory-rss-').locator('strong').innerText(), { timeout: 20_000 }).toMatch(/MiB$/);
    await screenshot(page, '06-metrics');

    // Stop (ACPI: the guest powers itself off); both tabs follow.
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 60_000 }).toBe('stopped');
    await expect.poll(() => row.getByTestId('state').innerText(), { timeout: 10_000 }).toBe('stopped');
    expect(qemuPidsUnder(home)).toEqual([]);

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/#\/$/);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    await screenshot(watcher, '07-deleted');
    } catch (e) {
      await screenshot(page, 'failure-page');
      await screenshot(watcher, 'failure-watcher');
      throw new Error(`${(e as Error).message}\npage problems: ${JSON.stringify(problems)}`, { cause: e });
    }
    expect(problems, JSON.stringify(problems)).toEqual([]);
  });
});
