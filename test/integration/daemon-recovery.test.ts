import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { eventually, type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

interface View {
  name: string;
  state: string;
  reason?: string;
  pid?: number;
}

/** Types a line into the guest's serial console (its shell is there). */
function typeOnSerial(home: string, name: string, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(join(home, 'instances', name, 'serial.sock'));
    socket.once('error', reject);
    socket.once('connect', () => socket.end(`${line}\n`, () => setTimeout(resolve, 200)));
  });
}

describe('daemon recovery: kill -9 and restart re-adopts running guests; restart policies; autostart; metrics', () => {
  const { home, cleanup } = tempHome('virtnode-recovery-');
  let daemon: RunningDaemon | undefined;
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    cleanup();
  });
  const consoleLog = (name: string) => join(home, 'instances', name, 'console.log');
  const instances = async (): Promise<View[]> => (await daemon!.api.request<View[]>('GET', '/instances')).body;
  const byName = async (name: string) => (await instances()).find((i) => i.name === name);

  it('re-adopts every running instance after kill -9 of the daemon, without restarting any, in under 2 s; a QEMU killed meanwhile is crashed and restarted (on-failure)', async () => {
    for (const name of ['keep-a', 'keep-b', 'fragile']) {
      const r = await virtnode(home, ['create', name, ...bootArgs, '--start']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await virtnode(home, ['create', 'boot-me', ...bootArgs])).code).toBe(0);
    expect((await virtnode(home, ['set', 'fragile', 'restart=on-failure'])).code).toBe(0);
    expect((await virtnode(home, ['set', 'boot-me', 'autostart=true'])).code).toBe(0);
    for (const name of ['keep-a', 'keep-b', 'fragile']) await waitForText(consoleLog(name), TEST_GUEST_READY_MARKER, 90_000);

    // First start of the daemon in this boot: autostart instances are started.
    daemon = await startDaemon(home);
    await eventually(async () => ((await byName('boot-me'))?.state === 'running' ? true : undefined), 30_000, 'boot-me autostarted');
    const before = new Map((await instances()).map((i) => [i.name, i.pid]));
    expect([...before.values()].every((pid) => typeof pid === 'number')).toBe(true);

    expect(await daemon.stop('SIGKILL')).toBe(null);
    process.kill(before.get('fragile')!, 'SIGKILL');
    await eventually(() => {
      try {
        process.kill(before.get('fragile')!, 0);
        return undefined;
      } catch {
        return true;
      }
    }, 5_000, 'the QEMU of fragile to be gone');

    const t0 = performance.now();
    daemon = await startDaemon(home);
    const after = await instances();
    const apiMs = performance.now() - t0;
    for (const name of ['keep-a', 'keep-b', 'boot-me']) {
      expect(after.find((i) => i.name === name)).toMatchObject({ state: 'running', pid: before.get(name) });
    }
    // The daemon's own measure: from its process start (Node's start-up included) to every guest adopted.
    const adoption = daemon.logLines().find((l) => l['msg'] === 'instances re-adopted')!;
    expect(adoption['adopted']).toEqual(['boot-me', 'keep-a', 'keep-b']);
    const adoptedMs = adoption['sinceProcessStartMs'] as number;
    console.log(`re-adopted 3 running instances ${adoptedMs} ms after the daemon process started; API answering with them after ${apiMs.toFixed(0)} ms (load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
    expect(adoptedMs).toBeLessThan(2_000);

    const crashLog = daemon.logLines().find((l) => l['msg'] === 'instance crashed while the daemon was down' && l['instance'] === 'fragile');
    expect(crashLog?.['reason']).toMatch(/QEMU \(pid \d+\) exited without a guest shutdown: it was killed or crashed/);
    const restarted = await eventually(async () => {
      const f = await byName('fragile');
      return f?.state === 'running' && f.pid !== before.get('fragile') ? f : undefined;
    }, 30_000, 'fragile restarted');
    expect(restarted.pid).not.toBe(before.get('fragile'));
  }, 240_000);

  it('while running, the daemon restarts a crashed on-failure instance, leaves a restart=no one crashed, and restarts an `always` one its guest powered off', async () => {
    const fragile = (await byName('fragile'))!;
    const keepA = (await byName('keep-a'))!;
    expect((await virtnode(home, ['set', 'keep-b', 'restart=always'])).code).toBe(0);
    const keepB = (await byName('keep-b'))!;
    await waitForText(consoleLog('fragile'), TEST_GUEST_READY_MARKER, 90_000);
    process.kill(fragile.pid!, 'SIGKILL');
    process.kill(keepA.pid!, 'SIGKILL');
    await typeOnSerial(home, 'keep-b', 'poweroff -f');
    const again = await eventually(async () => {
      const f = await byName('fragile');
      return f?.state === 'running' && f.pid !== fragile.pid ? f : undefined;
    }, 30_000, 'fragile restarted after its QEMU was killed');
    expect(again.pid).not.toBe(fragile.pid);
    const b = await eventually(async () => {
      const i = await byName('keep-b');
      return i?.state === 'running' && i.pid !== keepB.pid ? i : undefined;
    }, 60_000, 'keep-b restarted after its guest powered off');
    expect(b.pid).not.toBe(keepB.pid);
    const a = await byName('keep-a');
    expect(a).toMatchObject({ state: 'crashed', reason: expect.stringMatching(/killed or crashed/) });
    const restartLogs = daemon!.logLines().filter((l) => l['msg'] === 'instance started').map((l) => `${l['instance']}: ${l['why']}`);
    expect(restartLogs).toEqual(expect.arrayContaining(['fragile: restart policy on-failure', 'keep-b: restart policy always']));
  }, 180_000);

  it('a stopped autostart instance stays stopped when the daemon restarts (autostart is once per boot)', async () => {
    const stop = await virtnode(home, ['stop', '--force', 'boot-me']);
    expect(stop.code, stop.stderr).toBe(0);
    await daemon!.stop('SIGKILL');
    daemon = await startDaemon(home);
    await new Promise((r) => setTimeout(r, 2_500)); // two watch rounds
    expect(await byName('boot-me')).toMatchObject({ state: 'stopped' });
  });

  it('/metrics parses as Prometheus text, the balloon reports the configured memory, and block counters move when the guest writes to its disk', async () => {
    const created = await virtnode(home, ['create', 'io', ...bootArgs, '--disk-size', '64M', '--start']);
    expect(created.code, created.stderr).toBe(0);
    await waitForText(consoleLog('io'), TEST_GUEST_READY_MARKER, 90_000);
    const scrape = async () => {
      const r = await daemon!.api.request<string>('GET', '/metrics');
      return parsePrometheusText(typeof r.body === 'string' ? r.body : String(r.body));
    };
    const first = await scrape();
    const written = (f: typeof first) => sampleValue(f, 'virtnode_instance_block_write_bytes_total', { instance: 'io', device: 'disk0' });
    const before = written(first);
    expect(before).toBeDefined();
    expect(sampleValue(first, 'virtnode_instance_state', { instance: 'io', state: 'running' })).toBe(1);
    expect(sampleValue(first, 'virtnode_instance_cpu_seconds_total', { instance: 'io' })).toBeGreaterThan(0);
    expect(sampleValue(first, 'virtnode_instance_memory_rss_bytes', { instance: 'io' })).toBeGreaterThan(10 * 1024 * 1024);
    // QEMU's own memory: some, and less than the whole process (the guest's RAM is not in it).
    const overhead = sampleValue(first, 'virtnode_instance_memory_overhead_bytes', { instance: 'io' });
    expect(overhead).toBeGreaterThan(1024 * 1024);
    expect(overhead).toBeLessThan(sampleValue(first, 'virtnode_instance_memory_rss_bytes', { instance: 'io' })!);
    // Every VM has a virtio balloon; nobody inflated it, so it reports the configured memory.
    expect(sampleValue(first, 'virtnode_instance_memory_balloon_bytes', { instance: 'io' })).toBe(128 * 1024 * 1024);
    expect(sampleValue(first, 'virtnode_instance_memory_configured_bytes', { instance: 'io' })).toBe(128 * 1024 * 1024);
    expect(sampleValue(first, 'virtnode_host_cpus', {})).toBeGreaterThan(0);
    expect(sampleValue(first, 'virtnode_instance_state', { instance: 'keep-a', state: 'crashed' })).toBe(1);

    await typeOnSerial(home, 'io', 'dd if=/dev/urandom of=/dev/vda bs=64k count=128 conv=fsync && echo dd-finished-$((40+2))');
    await waitForText(consoleLog('io'), 'dd-finished-42', 60_000);
    await new Promise((r) => setTimeout(r, 2_100)); // past the collection cache
    const second = await scrape();
    expect(written(second)! - before!).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(sampleValue(second, 'virtnode_instance_block_write_ops_total', { instance: 'io', device: 'disk0' })).toBeGreaterThan(0);
  }, 180_000);
});
