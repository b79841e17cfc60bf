/** The host contract, implemented once over the core: through a daemon, the host checked is the daemon's. */
import { statfs } from 'node:fs/promises';
import { cpus, freemem, hostname, loadavg, release, totalmem, uptime } from 'node:os';
import { hostEndpoints } from '../api/contracts/host.ts';
import { VERSION } from '../lib/version.ts';
import { ramPadNote } from '../qemu/ram-pad.ts';
import type { AppCore } from './context.ts';
import { checkRequestPath } from './request-paths.ts';
import { resource } from './resource.ts';

export const host = resource('host', hostEndpoints, (core: AppCore) => ({
  async summary() {
    const instances: Record<string, number> = {};
    for (const i of core.instances.repo.list()) instances[i.state] = (instances[i.state] ?? 0) + 1;
    return {
      hostname: hostname(),
      kernel: release(),
      cpus: cpus().length,
      memoryBytes: totalmem(),
      memoryAvailableBytes: freemem(),
      loadAverage: loadavg(),
      uptimeSeconds: uptime(),
      stateDir: core.paths.root,
      version: VERSION,
      instances,
      ...(await stateDisk(core.paths.root)),
    };
  },

  async check({ refresh, cpuinfo }, caller) {
    if (cpuinfo !== undefined) checkRequestPath(core.remotePaths, caller, 'cpuinfo', cpuinfo, 'file');
    const { checkHost } = await import('../host/index.ts');
    const report = await checkHost({ cacheDir: core.paths.hostCache, stateDir: core.paths.root, refreshProbe: refresh === true, ...(cpuinfo === undefined ? {} : { cpuinfoPath: cpuinfo }) });
    // The QEMU line says what virtnode does about QEMU < 9.0's TCG migration bug (qemu/ram-pad.ts).
    const note = report.qemu.version === undefined ? undefined : ramPadNote(report.qemu.version);
    return note === undefined ? report : { ...report, checks: report.checks.map((c) => (c.id === 'qemu' && c.status === 'PASS' ? { ...c, detail: `${c.detail}; ${note}` } : c)) };
  },
}));

async function stateDisk(dir: string): Promise<{ disk?: { capacityBytes: number; availableBytes: number } }> {
  try {
    const fs = await statfs(dir);
    return { disk: { capacityBytes: fs.blocks * fs.bsize, availableBytes: fs.bavail * fs.bsize } };
  } catch {
    return {};
  }
}
