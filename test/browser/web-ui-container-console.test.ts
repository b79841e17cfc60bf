/**
 * A system container launched from the web UI's form (with a disk limit), then its console in the browser: the
 * same serial-console tab as a VM's, through the daemon's console WebSocket (its shared hub over lxc-console).
 * Output the container writes to /dev/console shows in the terminal; keys typed there reach its getty, whose
 * answer comes back.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';
import { explainOnFailure, launchBrowser, pageProblems, screenshot } from './helpers/browser.ts';
import { startUiDaemon, type UiDaemon } from './helpers/ui-daemon.ts';

const terminalText = (page: Page) => page.locator('.xterm-rows').innerText();

describe('web UI: a container launched from the form, and its serial console', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-ctconsole-');
  let daemon: UiDaemon;
  let browser: { context: BrowserContext; close: () => Promise<void> };

  const run = async (args: string[], timeoutMs = 600_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    daemon = await startUiDaemon(home);
    browser = await launchBrowser({ ignoreHTTPSErrors: true });
  });
  afterAll(async () => {
    await virtnode(home, ['delete', '--force', 'web-ct']).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    await browser?.close();
    await daemon?.stop();
    cleanup();
  });

  it('launches a container from the launch form, shows what it prints and takes what is typed', async () => {
    await run(['image', 'import', debianImage(), '--name', 'debian-12']);
    const page = await browser.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
    await page.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(daemon.token)})`);
    await page.goto(`${daemon.url}/ui/#/launch`);
    await expect.poll(() => page.locator('select[name=image]').inputValue()).toBe('debian-12');
    await page.getByLabel('a system container (LXC)').check();
    // The tuning knobs are QEMU's: the form leaves them out for a container.
    expect(await page.getByText('Performance tuning').count()).toBe(0);
    await page.getByLabel('Name').fill('web-ct');
    await page.getByLabel('Memory').fill('256M');
    await page.getByLabel('Disk size').fill('512M');
    await page.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL(/#\/instances\/web-ct/);
    await expect.poll(() => page.getByTestId('operation').innerText(), { timeout: 500_000, interval: 1_000 }).toMatch(/launch (succeeded|failed|cancelled)/);
    expect(await page.getByTestId('operation').innerText()).toMatch(/launch succeeded/);
    expect(await page.getByTestId('instance-state').innerText()).toBe('running');
    expect(await page.locator('.facts').innerText()).toMatch(/Container\s+unprivileged, at most \d+ processes, disk limited to 512 MiB/);
    const info = JSON.parse((await run(['info', 'web-ct', '--format', 'json'])).stdout) as { type: string; container?: { privileged: boolean; diskSizeBytes?: number } };
    expect(info).toMatchObject({ type: 'container', container: { privileged: false, diskSizeBytes: 512 * 1024 * 1024 } });
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await expect.poll(() => page.getByTestId('serial-status').innerText(), { timeout: 30_000 }).toBe('connected');
    // Output: a line written to the container's console reaches the terminal.
    await run(['exec', 'web-ct', '--', 'sh', '-c', 'echo console-marker-$((6*7)) > /dev/console']);
    await expect.poll(() => terminalText(page), { timeout: 30_000, interval: 500 }).toMatch(/console-marker-42/);
    // Input: a user name typed at the getty's prompt is echoed, and the getty asks for the password.
    await page.getByTestId('serial-terminal').click();
    await page.keyboard.type('\n');
    await expect.poll(() => terminalText(page), { timeout: 30_000, interval: 500 }).toMatch(/web-ct login:/);
    await page.keyboard.type('typed-in-browser\n');
    await expect.poll(() => terminalText(page), { timeout: 30_000, interval: 500 }).toMatch(/typed-in-browser[\s\S]*Password:/);
    await screenshot(page, 'container-serial-console');
    expect(problems).toEqual([]);
    await page.close();
  });
});
