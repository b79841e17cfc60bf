import type { Command } from 'commander';

export function registerHostCommands(program: Command): void {
  const host = program.command('host').description('this machine as a virtualization host');
  host
    .command('check')
    .description('check CPU, KVM (by booting a tiny guest), devices, cgroups, IOMMU, QEMU and firmware')
    .option('--json', 'machine-readable output')
    .option('--cpuinfo <file>', 'check a /proc/cpuinfo captured on another host')
    .option('--refresh', 'probe KVM again instead of using the cached verdict')
    .action(async (o: { json?: boolean; cpuinfo?: string; refresh?: boolean }) => {
      const { checkHost, formatHostReport } = await import('../../host/index.ts');
      const { statePaths } = await import('../../lib/paths.ts');
      const report = await checkHost({
        cacheDir: statePaths().hostCache,
        refreshProbe: o.refresh === true,
        ...(o.cpuinfo === undefined ? {} : { cpuinfoPath: o.cpuinfo }),
      });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatHostReport(report));
      // Like virt-host-validate: a FAIL line means this host cannot run VMs as asked.
      if (report.checks.some((c) => c.status === 'FAIL')) process.exitCode = 11;
    });
}
