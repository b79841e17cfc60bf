/**
 * The fault tier, part 1, on QEMU's side: a QEMU killed (SIGKILL) in the middle of a block job, and a QEMU
 * stopped (SIGSTOP). The instance must then show what happened, its disk chain stay consistent and usable, and
 * every command answer within a bounded time with an error that names the instance.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { queryBlockJobs } from '../../src/qmp/commands.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { type CliResult, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { auditState, chainOf, readRows } from '../helpers/state-audit.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 90_000;
/**
 * What a command may take against a stopped QEMU: it must end rather than hang. The 5 s QMP timeout (once or
 * twice) and the CLI's start take 6-14 s on a busy 2-core machine; the bound leaves room for a busier one.
 */
const BOUNDED_MS = 60_000;

describe('QEMU killed or stopped under virtnode (tiny guest, TCG)', () => {
  const { home, cleanup } = tempHome('virtnode-faults-qemu-');
  afterAll(cleanup);
  const ok = async (args: string[], options: { env?: Record<string, string> } = {}): Promise<CliResult> => {
    const r = await virtnode(home, args, options);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };
  const instance = (name: string) => readRows(home).instances.find((i) => i.name === name)!;
  const booted = (name: string) => waitForText(join(home, 'instances', name, 'console.log'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
  const expectPattern = (disk: string, byte: number) => {
    const out = execFileSync('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', `read -P ${byte} 0 1M`, disk], { encoding: 'utf8' });
    expect(out, `${disk} should hold pattern ${byte}`).not.toContain('Pattern verification failed');
  };

  it('QEMU killed during the live block-commit of a snapshot delete: crashed, chain consistent, the delete then succeeds offline', async () => {
    await ok(['create', 'bj', '--disk-size', '64M', ...bootArgs]);
    await ok(['snapshot', 'create', 'bj', 's1', '--external']);
    // Data in the overlay, so the commit has something to move.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 0 1M', instance('bj').spec.disks[0]!.path], { stdio: 'ignore' });
    await ok(['start', 'bj']);
    await booted('bj');
    const chainBefore = chainOf(instance('bj').spec.disks[0]!.path);
    expect(chainBefore).toHaveLength(2);

    // The active commit waits at READY (delaypoint) while this test kills QEMU.
    const rm = virtnode(home, ['snapshot', 'rm', 'bj', 's1'], { env: { VIRTNODE_DELAYPOINT: 'block-job.ready:60000' } });
    const qmp = await QmpConnection.connect(join(home, 'instances', 'bj', 'qmp-query.sock'), { timeoutMs: 5_000 });
    try {
      const deadline = Date.now() + 30_000;
      while (!(await queryBlockJobs(qmp)).some((j) => j.ready)) {
        expect(Date.now(), 'the block-commit never became ready').toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      qmp.close();
    }
    const pid = instance('bj').pid!;
    process.kill(pid, 'SIGKILL');
    const failed = await rm;
    expect(failed.code, failed.stderr).toBe(8);
    expect(failed.stderr).toContain('bj');

    const info = JSON.parse((await ok(['info', 'bj', '--format', 'json'])).stdout) as { state: string; reason?: string };
    expect(info.state).toBe('crashed');
    expect(info.reason).toContain(`QEMU (pid ${pid}) exited without a guest shutdown`);
    // The database's chain is the files' chain, every layer passes qemu-img check, the data reads back.
    expect(chainOf(instance('bj').spec.disks[0]!.path)).toEqual(chainBefore);
    expect(readRows(home).snapshots.find((s) => s.name === 's1')).toMatchObject({ state: 'ready' });
    await ok(['reconcile']);
    expect(auditState(home)).toEqual([]);
    expectPattern(chainBefore[0]!, 0x77);

    // Retried on the stopped instance: merged offline; the instance boots from the merged disk.
    await ok(['snapshot', 'rm', 'bj', 's1']);
    expect(instance('bj').spec.disks[0]!.path).toBe(join(home, 'instances', 'bj', 'disk0.qcow2'));
    expectPattern(join(home, 'instances', 'bj', 'disk0.qcow2'), 0x77);
    expect(auditState(home)).toEqual([]);
    await ok(['start', 'bj']);
    await booted('bj');
    await ok(['delete', '--force', 'bj']);
    expect(auditState(home)).toEqual([]);
  }, 240_000);

  it('QEMU stopped with SIGSTOP: QMP commands fail in bounded time naming the instance; after SIGCONT all works; stop --force and delete --force end it', async () => {
    await ok(['create', 'hang', '--disk-size', '16M', ...bootArgs, '--start']);
    await booted('hang');
    const pid = instance('hang').pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      for (const args of [['pause', 'hang'], ['snapshot', 'create', 'hang', 'h1', '--disk-only']]) {
        const started = Date.now();
        const r = await virtnode(home, args);
        const took = Date.now() - started;
        expect(r.code, `virtnode ${args.join(' ')}: ${r.stderr}`).toBe(8);
        expect(r.stderr).toContain(`instance hang: QEMU (pid ${pid}) did not answer QMP within 5 s: its process is stopped`);
        expect(r.stderr).toContain(`hint: let it continue (kill -CONT ${pid}), or end it: virtnode stop --force hang`);
        expect(took).toBeLessThan(BOUNDED_MS);
        console.log(`SIGSTOPped QEMU: virtnode ${args.join(' ')} failed (exit 8) after ${took} ms`);
      }
      // Reading the state never waits on it for long.
      const started = Date.now();
      await ok(['list']);
      expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
      expect(readRows(home).snapshots).toEqual([]);
      expect(auditState(home)).toEqual([]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await ok(['pause', 'hang']);
    await ok(['resume', 'hang']);
    await ok(['snapshot', 'create', 'hang', 'h1', '--disk-only']);
    await ok(['snapshot', 'rm', 'hang', 'h1']);
    expect(auditState(home)).toEqual([]);

    process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    const stop = await ok(['stop', '--force', 'hang']);
    const took = Date.now() - started;
    console.log(`SIGSTOPped QEMU: virtnode stop --force took ${took} ms`);
    expect(took).toBeLessThan(BOUNDED_MS);
    expect(stop.stdout).toContain('hang');
    expect(instance('hang')).toMatchObject({ state: 'stopped', pid: null });
    expect(auditState(home)).toEqual([]);

    await ok(['start', 'hang']);
    await booted('hang');
    process.kill(instance('hang').pid!, 'SIGSTOP');
    const deleteStarted = Date.now();
    await ok(['delete', '--force', 'hang']);
    console.log(`SIGSTOPped QEMU: virtnode delete --force took ${Date.now() - deleteStarted} ms`);
    expect(Date.now() - deleteStarted).toBeLessThan(BOUNDED_MS);
    expect(readRows(home).instances).toEqual([]);
    expect(auditState(home)).toEqual([]);
  }, 240_000);
});
