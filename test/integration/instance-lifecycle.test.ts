import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPortOpen } from '../../src/instances/agent-port.ts';
import { qemuPidsUnder, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 60_000;

interface InstanceJson {
  name: string;
  state: string;
  reason?: string;
  pid?: number;
  uuid: string;
  smbiosUuid: string;
  nics: Array<{ mac: string }>;
}

describe('instance lifecycle on real QEMU (tiny guest, TCG)', () => {
  const { home, cleanup } = tempHome();
  const consoleLog = (name: string) => join(home, 'instances', name, 'console.log');
  const info = async (name: string): Promise<InstanceJson> => {
    const r = await virtnode(home, ['info', name, '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as InstanceJson;
  };

  beforeAll(() => {
    expect(existsSync(guest.kernel)).toBe(true);
  });
  afterAll(cleanup);

  it('create → start → marker → pause → resume → ACPI stop → start → force stop → delete', async () => {
    const created = await virtnode(home, ['create', 'vm1', ...bootArgs]);
    expect(created.code, created.stderr).toBe(0);
    expect((await info('vm1')).state).toBe('defined');

    const started = await virtnode(home, ['start', 'vm1']);
    expect(started.code, started.stderr).toBe(0);
    // The CLI process has exited; QEMU must keep running on its own.
    const running = await info('vm1');
    expect(running.state).toBe('running');
    expect(qemuPidsUnder(home)).toEqual([running.pid]);

    const log = await waitForText(consoleLog('vm1'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    // The guest sees the identity virtnode gave it.
    expect(log).toContain(`uuid=${running.smbiosUuid}`);
    expect(log).toContain(`macs=${running.nics[0]!.mac}`);

    // No guest agent in the tiny guest: QEMU says its port is closed, so info does not wait for one to answer.
    expect(await agentPortOpen(join(home, 'instances', 'vm1', 'qmp-query.sock'), 5_000)).toBe(false);

    expect((await virtnode(home, ['pause', 'vm1'])).code).toBe(0);
    expect((await info('vm1')).state).toBe('paused');
    const pausedAgain = await virtnode(home, ['pause', 'vm1']);
    expect(pausedAgain.code).toBe(5);
    expect(pausedAgain.stderr).toContain('it is paused');
    expect((await virtnode(home, ['resume', 'vm1'])).code).toBe(0);
    expect((await info('vm1')).state).toBe('running');

    // Graceful: the guest sees the ACPI power button and powers itself off.
    const stopped = await virtnode(home, ['stop', 'vm1', '--timeout', '30']);
    expect(stopped.code, stopped.stderr).toBe(0);
    const afterStop = await info('vm1');
    expect(afterStop.state).toBe('stopped');
    expect(afterStop.reason).toBe('guest powered off (ACPI shutdown)');
    expect(qemuPidsUnder(home)).toEqual([]);

    expect((await virtnode(home, ['start', 'vm1'])).code).toBe(0);
    const second = await info('vm1');
    expect(second.pid).not.toBe(running.pid);
    expect(second.uuid).toBe(running.uuid); // identity survives a restart
    const forced = await virtnode(home, ['stop', '--force', 'vm1']);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await info('vm1')).reason).toBe('stopped by force');
    expect(qemuPidsUnder(home)).toEqual([]);

    expect((await virtnode(home, ['delete', 'vm1'])).code).toBe(0);
    const gone = await virtnode(home, ['info', 'vm1']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('instance vm1 does not exist');
    expect(readdirSync(join(home, 'instances'))).toEqual([]);
  });

  it('a stop right after start, the guest still booting (its first power button press lost), is a clean ACPI power-off', async () => {
    expect((await virtnode(home, ['create', 'early', ...bootArgs, '--start'])).code).toBe(0);
    expect(readFileSync(consoleLog('early'), 'utf8')).not.toContain(TEST_GUEST_READY_MARKER); // nothing listens yet
    const began = Date.now();
    const stopped = await virtnode(home, ['stop', 'early', '--timeout', '45']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect((await info('early')).reason).toBe('guest powered off (ACPI shutdown)');
    expect(Date.now() - began).toBeLessThan(45_000);
    // It had booted meanwhile: a later press reached the guest's acpid, which powered it off.
    expect(readFileSync(consoleLog('early'), 'utf8')).toContain(TEST_GUEST_READY_MARKER);
    expect(qemuPidsUnder(home)).toEqual([]);
    expect((await virtnode(home, ['delete', 'early'])).code).toBe(0);
  });

  it('a VM outlives the CLI and is re-attached by later commands; kill -9 of QEMU shows as crashed', async () => {
    expect((await virtnode(home, ['create', 'vm2', ...bootArgs, '--start'])).code).toBe(0);
    const first = await info('vm2');
    await waitForText(consoleLog('vm2'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    // Each command below is a new process that attaches over QMP to the QEMU started by another one.
    expect((await virtnode(home, ['pause', 'vm2'])).code).toBe(0);
    expect((await virtnode(home, ['resume', 'vm2'])).code).toBe(0);
    expect((await info('vm2')).pid).toBe(first.pid);

    process.kill(first.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const list = await virtnode(home, ['list', '--format', 'json']);
    const crashed = (JSON.parse(list.stdout) as InstanceJson[]).find((i) => i.name === 'vm2')!;
    expect(crashed.state).toBe('crashed');
    expect(crashed.reason).toMatch(/QEMU \(pid \d+\) exited without a guest shutdown/);
    // A crashed instance can be started again.
    expect((await virtnode(home, ['start', 'vm2'])).code).toBe(0);
    expect((await virtnode(home, ['delete', '--force', 'vm2'])).code).toBe(0);
    expect(qemuPidsUnder(home)).toEqual([]);
  });

  it('the serial console answers typed commands, and logs keep the output', async () => {
    expect((await virtnode(home, ['create', 'vm3', ...bootArgs, '--start'])).code).toBe(0);
    await waitForText(consoleLog('vm3'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    // Piped stdin: type a command, then Ctrl-] (0x1d) after the answer has had time to come back.
    const session = virtnode(home, ['console', 'vm3'], { input: 'echo answer-$((6*7))\n' , timeoutMs: 20_000 });
    await waitForText(consoleLog('vm3'), 'answer-42', 15_000);
    const result = await session;
    expect(result.stdout).toContain('answer-42');
    const logs = await virtnode(home, ['logs', 'vm3']);
    expect(logs.stdout).toContain(TEST_GUEST_READY_MARKER);
    expect(logs.stdout).toContain('answer-42');
    const whole = await virtnode(home, ['logs', '--all', 'vm3']);
    expect(whole.stdout.endsWith(logs.stdout)).toBe(true);
    expect(logs.stdout.split('\n').length - 1).toBeLessThanOrEqual(200);
    const last = await virtnode(home, ['logs', '-n', '1', 'vm3']);
    expect(last.stdout).toBe(whole.stdout.slice(whole.stdout.lastIndexOf('\n', whole.stdout.length - 2) + 1));
    const bad = await virtnode(home, ['logs', '--lines', 'ten', 'vm3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: --lines: "ten" is not a whole number/);
    expect((await virtnode(home, ['logs', '--lines', '5', '--all', 'vm3'])).code).toBe(2);
    expect((await virtnode(home, ['delete', '--force', 'vm3'])).code).toBe(0);
  });
});
