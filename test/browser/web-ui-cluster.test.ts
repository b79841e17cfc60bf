import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, createSimHosts, destroyKeepingLogs, formCluster, installTinyTemplate, listOn, ok } from '../helpers/cluster-hosts.ts';
import { seriousViolations } from './helpers/axe.ts';
import { explainOnFailure, launchBrowser, pageProblems, screenshot } from './helpers/browser.ts';

/**
 * The web UI of a cluster (two simulated hosts: netns, real daemons and etcd members, the tiny guest), served by
 * h1 over TLS on its cluster address and reached by Chromium from the test's namespace: the Cluster page lists
 * both hosts and the etcd members, the instance page moves a running guest live from h1 to h2, and the Cluster
 * page evacuates a host and restores it.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];
const UI_PORT = 8443;

describe('web UI in Chromium against a cluster: the Cluster page and a live move', () => {
  let sim: SimCluster;
  let h1: SimHost;
  let h2: SimHost;
  let url: string;
  let token: string;
  let browser: { context: BrowserContext; close: () => Promise<void> } | undefined;

  beforeAll(async () => {
    sim = await createSimHosts(2, { subnet: 203, env: { VIRTNODE_CLUSTER_CPU_OVERCOMMIT: '1' } });
    [h1, h2] = sim.hosts as [SimHost, SimHost];
    sim.attachTester();
    const cert = join(h1.home, 'ui.crt');
    const key = join(h1.home, 'ui.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=h1', '-addext', `subjectAltName=IP:${h1.address}`], { stdio: 'ignore' });
    token = (await ok(h1, ['token', 'create', 'browser'])).trim();
    await h1.startDaemon(['--listen', `${h1.address}:${UI_PORT}`, '--tls-cert', cert, '--tls-key', key]);
    await h2.startDaemon();
    for (const h of sim.hosts) installTinyTemplate(h);
    await formCluster(sim.hosts);
    url = `https://${h1.address}:${UI_PORT}`;
    browser = await launchBrowser({ ignoreHTTPSErrors: true });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await destroyKeepingLogs(sim, 'web-ui-cluster');
  });

  it('the Cluster page shows both hosts online with their use, and the etcd members with a leader', async () => {
    await ok(h1, ['launch', 'tiny', '--name', 'm1', ...LAUNCH, '--target', 'h1']);
    const page = await browser!.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
    await page.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(token)})`);
    await page.goto(`${url}/ui/#/cluster`);
    const hosts = page.getByTestId('cluster-hosts');
    await expect.poll(() => hosts.getByTestId('host-state').allInnerTexts(), { timeout: 20_000 }).toEqual(['online', 'online']);
    await expect.poll(() => page.getByTestId('cluster-host-h1').innerText()).toMatch(/1 running of 1/);
    expect(await page.getByTestId('cluster-host-h2').innerText()).toMatch(/0 running of 0/);
    expect(await page.getByTestId('etcd-summary').innerText()).toMatch(/Members run by virtnode: 2 members, leader h[12]\./);
    expect(await seriousViolations(page)).toEqual([]);
    await screenshot(page, 'cluster-page');
    expect(problems).toEqual([]);
    await page.close();
  }, 120_000);

  it('the instance page moves a running guest live from h1 to h2: the page follows it, h1 keeps no QEMU', async () => {
    const page = await browser!.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
    await page.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(token)})`);
    await page.goto(`${url}/ui/#/instances/m1`);
    await expect.poll(() => page.getByTestId('instance-state').innerText(), { timeout: 30_000 }).toBe('running');
    const move = page.getByTestId('move');
    const target = move.getByLabel('Host');
    await expect.poll(() => target.locator('option').allInnerTexts()).toEqual([`h2 (${h2.address})`]);
    expect(await seriousViolations(page)).toEqual([]);
    await move.getByRole('button', { name: 'Move' }).click();
    const status = move.getByTestId('operation-status');
    await expect.poll(() => status.innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/succeeded|failed|cancelled/);
    expect(await status.innerText(), await move.innerText()).toBe('succeeded');
    // The page now says where it runs, and offers the way back.
    await expect.poll(() => page.locator('.facts').innerText(), { timeout: 20_000 }).toMatch(/Host\s+h2/);
    await expect.poll(() => target.locator('option').allInnerTexts()).toEqual([`h1 (${h1.address})`]);
    await screenshot(page, 'cluster-moved');
    expect(problems).toEqual([]);
    await page.close();

    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);
    for (const h of sim.hosts) expect((await listOn(h)).find((i) => i.name === 'm1')).toMatchObject({ host: 'h2', state: 'running' });
  }, 240_000);

  it('the Cluster page evacuates h2 (its guest moves to h1, h2 is out of placement) and restores it (the guest comes back)', async () => {
    const page = await browser!.context.newPage();
    const problems = pageProblems(page);
    explainOnFailure(problems);
    page.on('dialog', (d) => void d.accept());
    await page.addInitScript(`sessionStorage.setItem('virtnode.token', ${JSON.stringify(token)})`);
    await page.goto(`${url}/ui/#/cluster`);
    const row = (name: string) => page.getByTestId(`cluster-host-${name}`);
    const work = page.getByTestId('host-work');
    // The newest of these operations is shown: wait for this one's label, then for its end.
    const finished = async (label: string) => {
      await expect.poll(() => work.locator('.operation-head').innerText().catch(() => ''), { timeout: 20_000 }).toContain(label);
      await expect.poll(() => work.getByTestId('operation-status').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/succeeded|failed|cancelled/);
      expect(await work.getByTestId('operation-status').innerText(), await work.innerText()).toBe('succeeded');
    };

    await row('h2').getByRole('button', { name: 'Evacuate' }).click();
    await finished('Evacuate of h2');
    expect(await work.getByTestId('work-result').innerText()).toMatch(/m1\s+h2\s+h1\s+moved/);
    await expect.poll(() => row('h2').getByTestId('host-state').innerText(), { timeout: 20_000 }).toBe('evacuated');
    expect(qemuPidsUnder(h2.home)).toEqual([]);
    expect((await listOn(h2)).find((i) => i.name === 'm1')).toMatchObject({ host: 'h1', state: 'running' });
    expect(await seriousViolations(page)).toEqual([]);
    await screenshot(page, 'cluster-evacuated');

    await row('h2').getByRole('button', { name: 'Restore' }).click();
    await finished('Restore of h2');
    expect(await work.getByTestId('work-result').innerText()).toMatch(/m1\s+h1\s+h2\s+moved/);
    await expect.poll(() => row('h2').getByTestId('host-state').innerText(), { timeout: 20_000 }).toBe('online');
    expect((await listOn(h1)).find((i) => i.name === 'm1')).toMatchObject({ host: 'h2', state: 'running' });
    expect(problems).toEqual([]);
    await page.close();

    await ok(h1, ['delete', '--force', 'm1']);
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(qemuPidsUnder(h2.home)).toEqual([]);
  }, 300_000);
});
