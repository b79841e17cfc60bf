/**
 * What a running QEMU really has, asked over its monitors rather than read from virtnode's record: vCPUs, the
 * memory it booted with and the balloon's size, the block devices and NICs attached now. `virtnode diff` compares
 * this with the record to find what changed behind virtnode's back (a device_del over QMP, say).
 */
import { balloon, queryBalloon, queryBlock, queryCpusFast, queryMemorySizeSummary, queryRxFilter } from '../../../qmp/commands.ts';
import { QmpConnection } from '../../../qmp/connection.ts';
import type { LiveDevices } from '../../driver.ts';

const QMP_TIMEOUT_MS = 2_000;
const MIB = 1024 * 1024;

export async function inspectQemu(qmpQuerySocket: string): Promise<LiveDevices> {
  const qmp = await QmpConnection.connect(qmpQuerySocket, { timeoutMs: QMP_TIMEOUT_MS });
  try {
    const options = { timeoutMs: QMP_TIMEOUT_MS };
    const [cpus, size, block, nics] = await Promise.all([queryCpusFast(qmp, options), queryMemorySizeSummary(qmp, options), queryBlock(qmp, options), queryRxFilter(qmp, options)]);
    const actual = await queryBalloon(qmp, options).then(
      (b) => b.actual,
      () => size['base-memory'],
    );
    const disks: string[] = [];
    for (const b of block) {
      if (b.inserted === undefined || b.qdev === undefined) continue;
      // -device virtio-blk-pci,id=disk1-dev: qdev is the id, or /machine/peripheral/disk1-dev/virtio-backend.
      const id = /\/machine\/peripheral\/([^/]+)/.exec(b.qdev)?.[1] ?? b.qdev;
      if (id.endsWith('-dev')) disks.push(id.slice(0, -'-dev'.length));
    }
    return {
      cpus: cpus.length,
      bootMemoryMiB: Math.round(size['base-memory'] / MIB),
      memoryMiB: Math.round(actual / MIB),
      disks,
      nicMacs: nics.map((n) => n['main-mac'].toLowerCase()),
    };
  } finally {
    qmp.close();
  }
}

/** Sets the balloon so the guest keeps `memoryMiB`. */
export async function balloonQemu(qmpSocket: string, memoryMiB: number): Promise<void> {
  const qmp = await QmpConnection.connect(qmpSocket, { timeoutMs: QMP_TIMEOUT_MS });
  try {
    await balloon(qmp, { value: memoryMiB * MIB }, { timeoutMs: QMP_TIMEOUT_MS });
  } finally {
    qmp.close();
  }
}
