import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { SerialShell } from '../helpers/serial-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { parseCpuList } from '../../src/lib/cpu-list.ts';
import type { InstanceView } from '../../src/api/schemas.ts';

const guest = testGuest();
const bootArgs = ['--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 90_000;
const SUBNET = '10.97.0.0/24'; // this file's own (test files share one network namespace)
const HUGEPAGES = '/sys/kernel/mm/hugepages/hugepages-2048kB';

function allowedCpus(pid: number, tid: number): number[] {
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  return parseCpuList('status', /^Cpus_allowed_list:\s*(\S+)/m.exec(status)![1]!);
}

function freeHugepages(): number {
  return Number(readFileSync(join(HUGEPAGES, 'free_hugepages'), 'utf8'));
}

describe('tuning knobs on real QEMU (tiny guest)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-tuning-');
  const shells: SerialShell[] = [];
  const hugeMount = mkdtempSync(join(tmpdir(), 'virtnode-huge-'));
  let hugeMounted = false;
  const nrHugepagesBefore = readFileSync(join(HUGEPAGES, 'nr_hugepages'), 'utf8').trim();
  const online = parseCpuList('online', readFileSync('/sys/devices/system/cpu/online', 'utf8'));
  const run = async (args: string[], expectCode = 0) => {
    const r = await virtnode(home, args);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stderr}`).toBe(expectCode);
    return r;
  };
  const info = async (name: string) => JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as InstanceView;
  const shellOf = async (name: string) => {
    const shell = await SerialShell.whenReady(join(home, 'instances', name), BOOT_TIMEOUT_MS);
    shells.push(shell);
    return shell;
  };
  const query = async <T>(name: string, command: string, args?: Record<string, unknown>): Promise<T> => {
    const qmp = await QmpConnection.connect(join(home, 'instances', name, 'qmp-query.sock'), { timeoutMs: 5_000 });
    try {
      return await qmp.execute<T>(command, args);
    } finally {
      qmp.close();
    }
  };

  beforeAll(() => {
    // Huge pages for this file only: 128 pages of 2 MiB on a hugetlbfs of our own, both undone in afterAll.
    writeFileSync(join(HUGEPAGES, 'nr_hugepages'), String(Number(nrHugepagesBefore) + 128));
    execFileSync('mount', ['-t', 'hugetlbfs', 'hugetlbfs', hugeMount]);
    hugeMounted = true;
  });
  afterAll(async () => {
    for (const s of shells) s.close();
    for (const name of ['tuned', 'huge', 'clone1']) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    await virtnode(home, ['network', 'rm', 'tunenet']).catch(() => {});
    if (hugeMounted) execFileSync('umount', [hugeMount]);
    rmSync(hugeMount, { recursive: true, force: true });
    writeFileSync(join(HUGEPAGES, 'nr_hugepages'), nrHugepagesBefore);
    cleanup();
  });

  it('refuses knobs the host or the instance cannot have, naming the flag, creating nothing', async () => {
    const offline = Math.max(...online) + 1;
    const cases: Array<[string[], number, RegExp]> = [
      [['--cpus', '2', '--pin-vcpus', '0'], 2, /--pin-vcpus: gives 1 host CPU for 2 vCPUs/],
      [['--cpus', '1', '--pin-vcpus', String(offline)], 11, new RegExp(`--pin-vcpus: host CPU ${offline} is not online`)],
      [['--pin-emulator', 'x'], 2, /--pin-emulator: "x" is not a CPU list/],
      [['--cpus', '2', '--numa-nodes', '3'], 2, /--numa-nodes: 2 vCPUs do not split evenly into 3 nodes/],
      [['--disk-aio', 'native'], 2, /--disk-aio: native needs direct I\/O/],
      [['--disk-cache', 'fastest'], 2, /--disk-cache: "fastest" is not valid/],
      [['--cpu-model', 'Nehalem-v99'], 11, /--cpu-model: this QEMU has no CPU model "Nehalem-v99"/],
      [['--cpu-model', 'host', '--accel', 'tcg'], 11, /--cpu-model: host needs KVM/],
      [['--net-queues', '2'], 2, /--net-queues: multi-queue needs a NIC on a managed network/],
      [['--memory', '512M', '--hugepages'], 11, /--hugepages: 512 MiB needs 256 free 2048 KiB huge pages; this host has/],
    ];
    for (const [args, code, message] of cases) {
      const r = await virtnode(home, ['create', 'bad', '--memory', '256M', ...bootArgs, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
    }
    expect(JSON.parse((await run(['list', '--format', 'json'])).stdout)).toEqual([]);
  });

  it('runs a guest with a CPU model, pinned vCPUs, two NUMA nodes, I/O threads, multi-queue disk and NIC, free page reporting', async () => {
    await run(['network', 'create', 'tunenet', '--subnet', SUBNET]);
    const [first, second] = [online[0]!, online[online.length - 1]!];
    await run([
      'create', 'tuned', '--cpus', '2', '--memory', '256M', '--disk-size', '64M', ...bootArgs,
      '--network', 'user', '--network', 'tunenet',
      '--cpu-model', 'qemu64', '--pin-vcpus', `${second},${first}`, '--pin-emulator', String(first), '--numa-nodes', '2',
      '--disk-cache', 'writeback', '--discard', '--iothreads', '--disk-queues', '2', '--net-queues', '2', '--free-page-reporting',
      '--start',
    ]);
    const view = await info('tuned');
    expect(view.tuning).toEqual({ cpuModel: 'qemu64', vcpuPins: [second, first], emulatorPins: [first], numaNodes: 2, diskCache: 'writeback', discard: true, iothreads: true, diskQueues: 2, netQueues: 2, freePageReporting: true });
    const pid = view.pid!;

    // Pinning, as the kernel sees it: each vCPU thread on its CPU, QEMU's main thread on the emulator CPU.
    const vcpus = await query<Array<{ 'cpu-index': number; 'thread-id': number }>>('tuned', 'query-cpus-fast');
    expect(vcpus.map((c) => allowedCpus(pid, c['thread-id']))).toEqual([[second], [first]]);
    expect(allowedCpus(pid, pid)).toEqual([first]);
    // As QEMU built it.
    const memdevs = await query<Array<{ id: string; size: number }>>('tuned', 'query-memdev');
    // Each node's backend 8 KiB larger under TCG on QEMU < 9.0 (qemu/ram-pad.ts), as recorded; the view keeps 256 MiB.
    const pad = view.runtime?.accel === 'tcg' && /^[0-8]\./.test(view.runtime.qemuVersion) ? 8 : 0;
    expect([view.memoryMiB, view.runtime?.memoryPadKiB ?? 0]).toEqual([256, pad]);
    expect(memdevs.map((m) => [m.id, m.size]).sort()).toEqual([['ram-node0', 128 * 1024 * 1024 + pad * 1024], ['ram-node1', 128 * 1024 * 1024 + pad * 1024]]);
    expect((await query<Array<{ id: string }>>('tuned', 'query-iothreads')).map((t) => t.id)).toEqual(['io-disk0']);
    expect(await query('tuned', 'qom-get', { path: '/machine/peripheral/balloon0', property: 'free-page-reporting' })).toBe(true);
    expect(await query('tuned', 'qom-get', { path: '/machine/peripheral/disk0-dev', property: 'num-queues' })).toBe(2);

    // As the guest sees it: two NUMA nodes, a CPU model, two queues on the disk and on the managed NIC.
    const shell = await shellOf('tuned');
    expect((await shell.run('ls -d /sys/devices/system/node/node*')).output).toMatch(/node0\s+\S*node1/);
    expect((await shell.run('grep -m1 "model name" /proc/cpuinfo')).output).toContain('QEMU Virtual CPU');
    expect((await shell.run('ls /sys/block/vda/mq')).output.split(/\s+/).filter((x) => /^\d+$/.test(x)).reduce<string[]>((all, q) => (all.includes(q) ? all : [...all, q]), []).sort()).toEqual(['0', '1']);
    const nic = view.nics.find((n) => n.network === 'tunenet')!;
    const ifname = (await shell.run(`grep -l ${nic.mac} /sys/class/net/*/address`)).output.match(/\/sys\/class\/net\/([^/]+)\/address/)![1]!;
    expect((await shell.run(`ls /sys/class/net/${ifname}/queues`)).output.split(/\s+/).filter((q) => /^(rx|tx)-\d$/.test(q)).reduce<string[]>((all, q) => (all.includes(q) ? all : [...all, q]), []).sort()).toEqual(['rx-0', 'rx-1', 'tx-0', 'tx-1']);
    await run(['stop', '--force', 'tuned']);
  });

  it('backs guest memory with huge pages and refuses when they run out', async () => {
    const before = freeHugepages();
    await run(['create', 'huge', '--memory', '128M', ...bootArgs, '--hugepages', '--start']);
    // prealloc: all 64 pages are taken at start (huge pages are never padded: qemu/ram-pad.ts).
    expect(before - freeHugepages()).toBe(64);
    expect((await info('huge')).runtime?.memoryPadKiB).toBeUndefined();
    await shellOf('huge');
    // Another guest as large as what is left plus one page is refused before anything is made.
    const left = freeHugepages();
    const r = await virtnode(home, ['create', 'bad', '--memory', `${(left + 1) * 2}M`, ...bootArgs, '--hugepages']);
    expect(r.code, r.stderr).toBe(11);
    expect(r.stderr).toContain(`this host has ${left}`);
    await run(['stop', '--force', 'huge']);
    expect(freeHugepages()).toBe(before);
    await run(['delete', 'huge']);
  });
});
