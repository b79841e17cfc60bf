import type { Command } from 'commander';

export function registerHostCommands(program: Command): void {
  const host = program.command('host').description('this machine as a virtualization host');
  host
    .command('check')
    .description('check CPU, KVM (by booting a tiny guest), devices, cgroups, IOMMU, QEMU and firmware')
    .option('--json', 'machine-readable output')
    .option('--cpuinfo <file>', 'check a /proc/cpuinfo captured on another host (through a daemon: a file on its host)')
    .option('--refresh', 'probe KVM again instead of using the cached verdict')
    .action(async (o: { json?: boolean; cpuinfo?: string; refresh?: boolean }) => {
      const [{ formatHostReport }, { api }, { resolve }] = await Promise.all([import('../../host/index.ts'), import('../api.ts'), import('node:path')]);
      // Through a daemon the host checked is the daemon's, and a --cpuinfo file is read there.
      const report = await (await api()).host.check({ ...(o.refresh === true ? { refresh: true } : {}), ...(o.cpuinfo === undefined ? {} : { cpuinfo: resolve(o.cpuinfo) }) });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatHostReport(report));
      // Like virt-host-validate: a FAIL line means this host cannot run VMs as asked.
      if (report.checks.some((c) => c.status === 'FAIL')) process.exitCode = 11;
    });
}
