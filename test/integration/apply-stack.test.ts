import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { deviceDel } from '../../src/qmp/commands.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { eventually, type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { waitForBoot } from '../helpers/guest-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
// Subnets of this file only (test files share one network namespace).
const SUBNET = '10.149.7.0/24';

const boot = `kernel: ${guest.kernel}
initrd: ${guest.initrd}
cmdline: ${JSON.stringify(guest.cmdline)}`;

const BASE = `# the network and the volume of the stack
kind: network
name: ap-net
subnet: ${SUBNET}
---
kind: volume
name: ap-data
size: 64M
---
kind: volume
name: ap-hot
size: 32M
`;

const vmA = (memory: string, volumes = ['ap-data']) => `kind: instance
name: ap-a
${boot}
memory: ${memory}
nics:
  - network: user
  - network: ap-net
volumes: [${volumes.join(', ')}]
`;
const vmB = (nics: string[]) => `kind: instance
name: ap-b
${boot}
memory: 128M
nics:
${nics.map((n) => `  - network: ${n}`).join('\n')}
`;

interface InstanceJson {
  name: string;
  state: string;
  uuid: string;
  memoryMiB: number;
  disks: Array<{ id: string; path: string }>;
  nics: Array<{ index: number; mac: string; network: string }>;
  instanceId?: string;
}

describe('virtnode apply/plan/diff: a stack of a network, two instances and a volume (tiny guest, daemon + CLI)', { timeout: 600_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-apply-');
  const dir = join(home, 'stack');
  const base = join(dir, '10-base.yaml');
  const vms = join(dir, '20-vms.yaml');
  let daemon: RunningDaemon | undefined;
  let blocker: Server | undefined;

  const run = (args: string[]) => virtnode(home, args, { timeoutMs: 240_000 });
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const info = async (name: string) => JSON.parse(await ok(['info', name, '--format', 'json'])) as InstanceJson;
  const names = async () => (JSON.parse(await ok(['list', '--format', 'json'])) as InstanceJson[]).map((i) => i.name).sort();
  const write = (files: Record<string, string>) => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  };
  /** What must not change when a bad file is refused: instances, networks and volumes as listed. */
  const snapshot = async () => {
    const list = (JSON.parse(await ok(['list', '--format', 'json'])) as InstanceJson[]).map((i) => ({ name: i.name, state: i.state, uuid: i.uuid, memoryMiB: i.memoryMiB, nics: i.nics.map((n) => n.mac) }));
    const nets = (JSON.parse(await ok(['network', 'ls', '--format', 'json'])) as Array<{ name: string; subnet?: string }>).map((n) => [n.name, n.subnet]);
    const vols = (JSON.parse(await ok(['volume', 'ls', '--format', 'json'])) as Array<{ name: string }>).map((v) => v.name);
    return { list, nets, vols };
  };

  beforeAll(async () => {
    daemon = await startDaemon(home);
  });

  afterAll(async () => {
    blocker?.close();
    // Everything the stack made goes with an empty stack and --prune; anything left is removed by hand.
    if (daemon !== undefined) {
      write({ 'empty.yaml': '# nothing\n' });
      await run(['apply', '-f', dir, '--stack', 'stack', '--prune']);
      for (const name of ['ap-a', 'ap-b', 'ap-c', 'ap-d', 'ap-hand']) await run(['delete', '--force', name]);
      await run(['volume', 'rm', 'ap-data']);
      await run(['volume', 'rm', 'ap-hot']);
      await run(['network', 'rm', 'ap-net']);
      await daemon.stop();
    }
    cleanup();
  });

  let first: { a: InstanceJson; b: InstanceJson };

  it('plans, applies, and a second apply changes nothing; identity stays', async () => {
    write({ '10-base.yaml': BASE, '20-vms.yaml': `${vmA('128M')}---\n${vmB(['user'])}` });
    const plan = await ok(['plan', '-f', dir]);
    expect(plan).toContain('+ network ap-net (create)');
    expect(plan).toContain('+ instance ap-a (create)');
    expect(plan).toContain('Plan: 5 to create, 0 to update, 0 to replace, 0 to delete.');
    expect(await names()).toEqual([]); // a plan changes nothing
    // The CLI without the daemon runs the same application layer and prints the same plan.
    const local = await virtnode(home, ['plan', '-f', dir], { env: { VIRTNODE_NO_DAEMON: '1' } });
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toBe(plan);

    const applied = await ok(['apply', '-f', dir]);
    expect(applied).toContain('Applied: 5 objects changed (stack stack).');
    first = { a: await info('ap-a'), b: await info('ap-b') };
    expect([first.a.state, first.b.state]).toEqual(['running', 'running']);
    expect(first.a.nics.map((n) => n.network)).toEqual(['user', 'ap-net']);
    expect(first.a.disks.some((d) => d.path.includes('ap-data'))).toBe(true);

    const again = await ok(['apply', '-f', dir]);
    expect(again).toBe('No changes: the host matches the stack files (stack stack).\n');
    expect((await virtnode(home, ['plan', '-f', dir], { env: { VIRTNODE_NO_DAEMON: '1' } })).stdout).toBe(again);
    expect(await info('ap-a')).toMatchObject({ uuid: first.a.uuid, nics: first.a.nics });
    expect(await ok(['diff', '-f', dir])).toBe('No drift: the live state matches the stack files (stack stack).\n');
  });

  it('refuses bad files with file:line:column and changes nothing', async () => {
    const before = await snapshot();
    write({
      '10-base.yaml': `${BASE}---\nkind: network\nname: ap-clash\nsubnet: 10.149.7.128/25\n`,
      '20-vms.yaml': `${vmA('128M')}---\nkind: instance\nname: ap-b\n${boot}\ncpus: many\n---\nkind: volume\nname: ap-x\n---\nkind: firewall\nname: fw\n---\nkind: instance\nname: ap-new\nimage: no-such-image\n`,
    });
    const r = await run(['apply', '-f', dir]);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe('error: the stack files have 5 problems; nothing was changed');
    const problems = lines.filter((l) => l.startsWith('/'));
    expect(problems, r.stderr).toEqual([
      `${base}:16:9: network ap-clash: subnet: 10.149.7.128/25 overlaps network ap-net (${SUBNET})`,
      `${vms}:17:7: instance ap-b: cpus: must be an integer, not string "many"`,
      `${vms}:19:1: volume ap-x: missing field "size"`,
      `${vms}:22:7: unknown kind "firewall"`,
      `${vms}:27:8: instance ap-new: image: there is no image no-such-image`,
    ]);
    expect(await snapshot()).toEqual(before);
  });

  it('a smaller memory is a live change (balloon), recorded for the next boot; a new NIC is hot-plugged', async () => {
    write({ '10-base.yaml': BASE, '20-vms.yaml': `${vmA('96M')}---\n${vmB(['user', 'ap-net'])}` });
    const plan = await ok(['plan', '-f', dir]);
    expect(plan).toContain('~ instance ap-a (update)\n    memory: 128M → 96M [live]');
    expect(plan).toContain('~ instance ap-b (update)\n    nics[1]: + ap-net [live]  hot-plug (a new MAC)');
    await ok(['apply', '-f', dir]);
    expect(await ok(['apply', '-f', dir])).toContain('No changes');
    const a = await info('ap-a');
    expect(a.memoryMiB).toBe(96);
    const b = await info('ap-b');
    expect(b.nics.map((n) => n.network)).toEqual(['user', 'ap-net']);
    expect(b.nics[0]!.mac).toBe(first.b.nics[0]!.mac);
    expect(b.uuid).toBe(first.b.uuid);
    // The hot-plugged NIC is in QEMU (diff asks QMP), and after a restart ap-a boots with 96 MiB.
    await ok(['restart', 'ap-a']);
    expect(await ok(['diff', '-f', dir])).toContain('No drift');
  });

  it('reports drift: a hand stop, and a disk detached over QMP behind virtnode\'s back', async () => {
    await ok(['stop', 'ap-b']);
    const stopped = await run(['diff', '-f', dir]);
    expect(stopped.code).toBe(1);
    expect(stopped.stdout).toContain('~ instance ap-b (update)\n    state: stopped → running [live]  start');
    await ok(['apply', '-f', dir]);
    expect((await info('ap-b')).state).toBe('running');

    // A volume added to a running instance is hot-plugged (on a PCIe root port, so it can also go away).
    write({ '10-base.yaml': BASE, '20-vms.yaml': `${vmA('96M', ['ap-data', 'ap-hot'])}---\n${vmB(['user', 'ap-net'])}` });
    expect(await ok(['plan', '-f', dir])).toContain('~ instance ap-a (update)\n    volumes: + ap-hot [live]  hot-plug');
    await ok(['apply', '-f', dir]);
    expect(await ok(['diff', '-f', dir])).toContain('No drift');
    const a = await info('ap-a');
    const disk = a.disks.find((d) => d.path.includes('ap-hot'))!;
    await waitForBoot(home, 'ap-a', 2);
    const qmp = await QmpConnection.connect(join(home, 'instances', 'ap-a', 'qmp.sock'), { timeoutMs: 5_000 });
    try {
      await deviceDel(qmp, { id: `${disk.id}-dev` });
    } finally {
      qmp.close();
    }
    const drift = await eventually(async () => {
      const r = await run(['diff', '-f', dir]);
      return r.stdout.includes('! drift') ? r : undefined;
    }, 30_000, 'the detached disk to show as drift');
    expect(drift.code).toBe(1);
    expect(drift.stdout).toContain(`! drift: instance ap-a: disks.${disk.id}: recorded volume ap-hot, live absent (detached behind virtnode's back)`);
    expect(drift.stdout).toContain('volumes: + ap-hot [live]  hot-plug');
  });

  it('a failure half-way keeps what was done and touches nothing after it; the next apply finishes', async () => {
    const port = await freeLoopbackPort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, '127.0.0.1', resolve));
    const more = `---\nkind: instance\nname: ap-c\n${boot}\nmemory: 128M\nports: ["${port}:80"]\n---\nkind: instance\nname: ap-d\n${boot}\nmemory: 128M\nstate: stopped\n`;
    write({ '10-base.yaml': BASE, '20-vms.yaml': `${vmA('96M', ['ap-data', 'ap-hot'])}---\n${vmB(['user', 'ap-net'])}${more}` });
    const failed = await run(['apply', '-f', dir]);
    expect(failed.code, failed.stderr).not.toBe(0);
    expect(failed.stderr).toContain(`error: apply stopped at instance ap-c: 127.0.0.1:${port}/tcp is in use`);
    expect(failed.stderr).toContain('not touched: instance ap-d');
    expect(await names()).toEqual(['ap-a', 'ap-b', 'ap-c']);
    expect((await info('ap-c')).state).toBe('defined');

    await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    blocker = undefined;
    const plan = await ok(['plan', '-f', dir]);
    expect(plan).toContain(`~ instance ap-c (update)\n    ports: + ${port}:80/tcp [next-boot]\n    state: defined → running [live]  start`);
    expect(plan).toContain('+ instance ap-d (create)');
    await ok(['apply', '-f', dir]);
    expect((await info('ap-c')).state).toBe('running');
    expect((await info('ap-d')).state).toBe('defined');
    expect(await ok(['apply', '-f', dir])).toContain('No changes');
  });

  it('--prune deletes only what this stack created and the files no longer hold', async () => {
    await ok(['create', 'ap-hand', '--memory', '64M', '--kernel', guest.kernel]);
    write({ '10-base.yaml': BASE, '20-vms.yaml': vmA('96M', ['ap-data', 'ap-hot']) });
    const without = await ok(['apply', '-f', dir]);
    expect(without).toContain('  instance ap-b\n    not in the stack files any more: --prune deletes it');
    expect(without).not.toContain('ap-hand');
    expect(await names()).toEqual(['ap-a', 'ap-b', 'ap-c', 'ap-d', 'ap-hand']);

    // Shut down gracefully: a guest that has not finished booting would miss the ACPI button (then forced after 60 s).
    await waitForBoot(home, 'ap-b', 2);
    await waitForBoot(home, 'ap-c');
    const plan = await ok(['plan', '-f', dir, '--prune']);
    expect(plan).toContain('- instance ap-b (delete)');
    expect(plan).toContain('Plan: 0 to create, 0 to update, 0 to replace, 3 to delete.');
    await ok(['apply', '-f', dir, '--prune']);
    expect(await names()).toEqual(['ap-a', 'ap-hand']);
    expect(await ok(['apply', '-f', dir, '--prune'])).toContain('No changes');
    expect((await info('ap-a')).uuid).toBe(first.a.uuid);
    await ok(['delete', 'ap-hand']);
  });

  it('prints the JSON Schema, the same as the daemon publishes', async () => {
    const printed = JSON.parse(await ok(['schema'])) as { definitions: Record<string, unknown> };
    expect(Object.keys(printed.definitions)).toEqual(['image', 'network', 'pool', 'volume', 'instance', 'template']);
    const published = await daemon!.api.request('GET', '/schema/apply');
    expect(published.status).toBe(200);
    expect(published.body).toEqual(printed);
  });
});
