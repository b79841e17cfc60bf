import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuPidsUnder, tempHome, virtnode } from '../helpers/cli.ts';
import { createQcow2 } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';
import { seriousViolations } from './helpers/axe.ts';
import { explainOnFailure, launchBrowser, pageProblems, screenshot } from './helpers/browser.ts';
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
    explainOnFailure(problems);
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

  it('launch from an image: the cloud-config is checked as it is typed (line numbers, a broken one refused), then the launch operation shows its phases and the host keys', { timeout: 120_000 }, async () => {
    const image = join(home, 'tiny.qcow2');
    await createQcow2(image);
    const imported = await virtnode(home, ['image', 'import', image, '--name', 'tiny']);
    expect(imported.code, imported.stderr).toBe(0);

    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
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

    // Launch it (an operation): its phases appear on the instance page as the daemon reports them. The image is
    // an empty disk, so the guest never gets an address; the instance is then deleted, launch or not.
    await page.getByLabel('Name').fill('img1');
    await page.getByLabel('Memory').fill('128M');
    await page.getByLabel('SSH public keys').fill('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVpdGVzdGtleWZvcnRoZXdlYnVpdGVzdHNvbmx5MDAw ui@test');
    await launch.click();
    await page.waitForURL(/#\/instances\/img1/);
    const operation = page.getByTestId('operation');
    await expect.poll(() => operation.innerText(), { timeout: 60_000 }).toMatch(/launch running[\s\S]*image tiny[\s\S]*disk [\s\S]*seed NoCloud[\s\S]*booting QEMU pid \d+/);
    // Identity: the fingerprints of the SSH host keys virtnode made for it.
    await expect.poll(() => page.locator('code', { hasText: /^SHA256:/ }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    await screenshot(page, '09-launch-operation');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/#\/$/);
    await expect.poll(() => qemuPidsUnder(home).length, { timeout: 20_000 }).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('launch from the form, watch the state live, type in the serial console, see the VNC screen, stop, delete', { timeout: 300_000 }, async () => {
    const watcher = await browser.context.newPage(); // a second tab on the list: it must follow without reloads
    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
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
    await page.getByLabel('Disk size').fill('64M'); // a qcow2 disk, so the instance can be snapshotted
    // Tuning: a pin list that does not match the vCPUs is refused as typed (Launch disabled), then fixed.
    await page.getByText('Performance tuning').click();
    await page.getByLabel('Pin vCPUs to host CPUs').fill('0,1');
    await expect.poll(() => page.getByTestId('tuning-vcpuPins-error').innerText()).toBe('one host CPU per vCPU: 1 needed, 2 given');
    expect(await page.getByRole('button', { name: 'Launch' }).isDisabled()).toBe(true);
    await page.getByLabel('Pin vCPUs to host CPUs').fill('0');
    await page.getByLabel('discard (TRIM frees disk space)').check();
    await screenshot(page, '02-launch-form');
    await page.getByRole('button', { name: 'Launch' }).click();
    try {
      await page.waitForURL(/#\/instances\/ui1/);
      await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 30_000 }).toBe('running');
      await expect.poll(() => page.getByTestId('addresses').innerText()).toMatch(/^user 52:54:00(:[0-9a-f]{2}){3}/);
      await page.getByRole('tab', { name: 'Settings' }).click();
      await expect.poll(() => page.getByTestId('tuning').innerText()).toBe('vcpuPins=0 discard');

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
      // A time axis in clock times, the value under the pointer (or the arrow keys), and a wider time range.
      const memory = page.getByTestId('chart-memory-rss-');
      const axisSpan = async () => {
        const labels = await memory.getByTestId('chart-axis').locator('span').allInnerTexts();
        const seconds = (clock: string) => clock.split(':').reduce((total, part) => total * 60 + Number(part), 0);
        return (seconds(labels.at(-1)!) - seconds(labels[0]!) + 86_400) % 86_400;
      };
      expect(await axisSpan()).toBe(120);
      const box = (await memory.locator('svg').boundingBox())!;
      await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
      await expect.poll(() => memory.getByTestId('chart-hover').innerText(), { timeout: 20_000 }).toMatch(/^\d\d:\d\d:\d\d: [\d.]+ MiB$/);
      await page.mouse.move(0, 0);
      await expect.poll(() => memory.getByTestId('chart-hover').innerText(), { timeout: 20_000 }).toBe('');
      await memory.locator('svg').focus();
      await page.keyboard.press('ArrowLeft');
      await expect.poll(() => memory.getByTestId('chart-hover').innerText(), { timeout: 20_000 }).toMatch(/MiB$/);
      await page.getByLabel('Time range').selectOption({ label: 'last 15 minutes' });
      await expect.poll(axisSpan, { timeout: 20_000 }).toBe(900);
      expect(await seriousViolations(page)).toEqual([]);
      await screenshot(page, '06-metrics');

      // Its devices while it runs: a change applies live (hot-plug).
      await page.getByRole('tab', { name: 'Disks & network' }).click();
      await expect.poll(() => page.getByTestId('disk-change-class').innerText(), { timeout: 20_000 }).toBe('applies live (hot-plug) and is kept for the next start');
      await expect.poll(() => page.getByTestId('nics').locator('tbody tr').count(), { timeout: 20_000 }).toBeGreaterThan(0);
      expect(await seriousViolations(page)).toEqual([]);

      // Snapshots: one with the memory of the running guest, named in the form; the table shows it.
      await page.getByRole('tab', { name: 'Snapshots' }).click();
      await page.getByText('No snapshots.').waitFor();
      await page.getByLabel('Name').fill('s1');
      await page.getByRole('button', { name: 'Take snapshot' }).click();
      const s1 = page.locator('tr[data-snapshot="s1"]');
      await expect.poll(() => s1.count(), { timeout: 60_000 }).toBe(1);
      expect(await s1.innerText()).toContain('internal, with memory');
      await expect.poll(() => page.getByTestId('snapshot-busy').count(), { timeout: 10_000 }).toBe(0);
      await screenshot(page, '06b-snapshot');

      // Pause and resume; then restart (an operation): a new QEMU, the serial console reconnects to the new boot.
      await page.getByRole('button', { name: 'Pause' }).click();
      await expect.poll(() => row.getByTestId('state').innerText(), { timeout: 15_000 }).toBe('paused');
      await page.getByRole('button', { name: 'Resume' }).click();
      await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 15_000 }).toBe('running');
      const [firstPid] = qemuPidsUnder(home);
      const markers = () => readFileSync(join(home, 'instances', 'ui1', 'console.log'), 'utf8').split(TEST_GUEST_READY_MARKER).length - 1;
      await page.getByRole('tab', { name: 'Serial console' }).click();
      await expect.poll(() => page.getByTestId('serial-status').innerText(), { timeout: 15_000 }).toBe('connected');
      await page.getByRole('button', { name: 'Restart' }).click();
      await expect.poll(() => qemuPidsUnder(home).filter((pid) => pid !== firstPid).length, { timeout: 60_000 }).toBe(1);
      // The new boot is up when its marker is in the console log a second time (acpid runs, so Stop works later).
      await expect.poll(() => markers(), { timeout: BOOT_TIMEOUT_MS, interval: 500 }).toBe(2);
      await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 30_000 }).toBe('running');
      // The old console closed with the old QEMU: the tab either offers to reconnect or (if it saw the instance
      // leave `running`) opened a new one by itself.
      const reconnect = page.getByRole('button', { name: 'Reconnect' });
      if (await reconnect.isVisible()) await reconnect.click();
      await expect.poll(() => page.getByTestId('serial-status').innerText(), { timeout: 15_000 }).toBe('connected');
      await page.getByTestId('serial-terminal').click();
      await page.keyboard.type('echo second-$((1+1))\n');
      await expect.poll(() => terminalText(page), { timeout: 20_000 }).toMatch(/^second-2$/m);
      await page.getByRole('tab', { name: 'Overview' }).click();

      // Stop (ACPI: the guest powers itself off); both tabs follow.
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 60_000 }).toBe('stopped');
      await expect.poll(() => row.getByTestId('state').innerText(), { timeout: 10_000 }).toBe('stopped');
      expect(qemuPidsUnder(home)).toEqual([]);

      // Revert the stopped instance to s1 (its disks; the notes say the memory state is not used), then delete s1.
      await page.getByRole('tab', { name: 'Snapshots' }).click();
      page.once('dialog', (dialog) => void dialog.accept());
      await s1.getByRole('button', { name: 'Revert' }).click();
      await expect.poll(() => page.getByTestId('snapshot-busy').count(), { timeout: 60_000 }).toBe(0);
      await page.getByText('disks restored; the memory state is not loaded into a stopped instance', { exact: false }).waitFor({ timeout: 10_000 });
      expect(await s1.innerText()).toContain('(current)');
      page.once('dialog', (dialog) => void dialog.accept());
      await s1.getByRole('button', { name: 'Delete' }).click();
      await page.getByText('No snapshots.').waitFor({ timeout: 60_000 });
      expect(await page.getByTestId('instance-state').innerText()).toBe('stopped');

      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Delete', exact: true }).click();
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
