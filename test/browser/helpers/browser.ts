import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { onTestFailed } from 'vitest';
import { REPO_ROOT } from '../../helpers/cli.ts';

export const CHROMIUM = process.env['VIRTNODE_CHROMIUM'] || '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-results', 'screenshots');

/**
 * Debian's Chromium through playwright-core (`npx playwright install` cannot download browsers here), headless,
 * with a fresh profile that is removed on close. Fails, never skips, when Chromium is missing.
 */
export async function launchBrowser(options: { ignoreHTTPSErrors?: boolean } = {}): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (scripts/setup.sh does)`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'virtnode-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
  });
  // playwright-core waits forever by default; a step that cannot happen should fail and say which.
  context.setDefaultTimeout(30_000);
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Requests that fail by design: a navigation aborts those in flight, and Chromium drops them when the host's
 * links change (a network's bridge, an instance's tap, made by the test in the namespace the browser shares):
 * the page sends them again (web/src/api.ts).
 */
const EXPECTED_FAILURES = new Set(['net::ERR_ABORTED', 'net::ERR_NETWORK_CHANGED']);

/**
 * Collects what the page reports as errors (CSP violations among them), to assert there were none: console
 * errors, answers of 400 and above, and requests that got no answer at all (a dropped connection).
 */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    // Failed requests are reported below with their URL.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text());
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.request().method()} ${new URL(response.url()).pathname}: HTTP ${response.status()}`);
  });
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText ?? 'failed';
    if (!EXPECTED_FAILURES.has(failure)) problems.push(`${request.method()} ${new URL(request.url()).pathname}: ${failure}`);
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return problems;
}

/** When the running test fails, prints what the page reported so far: the failed step alone rarely says why. */
export function explainOnFailure(problems: readonly string[]): void {
  onTestFailed(() => {
    if (problems.length > 0) console.error(`the page reported:\n  ${problems.join('\n  ')}`);
  });
}
