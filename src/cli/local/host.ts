import { orderedHostReport, type HostApi, type HostCheckRequest, type HostReport } from '../../client/host.ts';

/** The host check in this process (no daemon running, or VIRTNODE_NO_DAEMON=1). */
export class LocalHost implements HostApi {
  readonly via = 'local' as const;
  private readonly cacheDir: string;

  constructor(cacheDir: string) {
    this.cacheDir = cacheDir;
  }

  async check(request: HostCheckRequest): Promise<HostReport> {
    const { checkHost } = await import('../../host/index.ts');
    return orderedHostReport(
      await checkHost({ cacheDir: this.cacheDir, refreshProbe: request.refresh === true, ...(request.cpuinfoPath === undefined ? {} : { cpuinfoPath: request.cpuinfoPath }) }),
    );
  }
}
