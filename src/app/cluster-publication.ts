/** What this host publishes to the cluster under its lease: capacity (CPUs, memory, pools, QEMU) and use. */
import { readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import type { HostCapacity, HostUse } from '../cluster/model.ts';
import { resolveAccelerator } from '../host/accelerator.ts';
import { parseCpuinfo } from '../host/cpuinfo.ts';
import { programVersion } from '../host/programs.ts';
import type { InstanceService } from '../instances/service.ts';
import type { StorageService } from '../storage/service.ts';

const MIB = 1024 * 1024;

export function hostPublication(instances: InstanceService, storage: () => Promise<StorageService>, cacheDir: string): () => Promise<{ capacity: HostCapacity; use: HostUse }> {
  return async () => {
    const [{ listPools }, s, cpuinfo, qemu, accelerator] = await Promise.all([
      import('../storage/pools.ts'),
      storage(),
      readFile('/proc/cpuinfo', 'utf8').catch(() => ''),
      programVersion('qemu-system-x86_64', { cacheDir }).catch(() => undefined),
      // What this host's guests would run with: /dev/kvm can exist and still hang every guest (the probe's
      // verdict is cached, so this is a few stat() calls after the first time).
      resolveAccelerator('auto', { cacheDir }).then((c) => c.accel, () => 'tcg' as const),
    ]);
    const pools = (await listPools(s)).map((p) => ({ name: p.name, capacityBytes: p.capacity, availableBytes: p.available }));
    const all = instances.repo.list();
    const running = all.filter((i) => i.state === 'running' || i.state === 'paused' || i.state === 'starting');
    const capacity: HostCapacity = {
      cpus: cpus().length,
      memoryBytes: totalmem(),
      pools,
      accelerator,
      ...(qemu?.state === 'ok' ? { qemuVersion: qemu.version } : {}),
      cpuFlags: parseCpuinfo(cpuinfo).flags,
    };
    const use: HostUse = {
      instances: all.length,
      running: running.length,
      cpus: running.reduce((n, i) => n + i.spec.cpus, 0),
      memoryBytes: running.reduce((n, i) => n + i.spec.memoryMiB * MIB, 0),
    };
    return { capacity, use };
  };
}
