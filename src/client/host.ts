import type { HostReport } from '../host/check-host.ts';
import type { ApiClient } from './http.ts';

export type { HostReport } from '../host/check-host.ts';

export interface HostCheckRequest {
  /** Probe KVM again instead of using the cached verdict. */
  refresh?: boolean;
  /** A captured /proc/cpuinfo to judge the CPU from (a file on the host that does the check). */
  cpuinfoPath?: string;
}

/** This machine as a virtualization host (`virtnode host ...`), checked in this process or by the daemon. */
export interface HostApi {
  readonly via: 'local' | 'daemon';
  check(request: HostCheckRequest): Promise<HostReport>;
}

const REPORT_ORDER: ReadonlyArray<keyof HostReport> = ['status', 'checks', 'cpu', 'accelerator', 'kvm', 'qemu', 'kernel', 'firmware', 'durationMs'];

/** The report with its fields in one order, whichever side made it (a JSON serializer may reorder them). */
export function orderedHostReport(report: HostReport): HostReport {
  const ordered: Record<string, unknown> = {};
  for (const key of REPORT_ORDER) if (report[key] !== undefined) ordered[key] = report[key];
  ordered['checks'] = report.checks.map(({ id, title, status, detail, hint }) => ({ id, title, status, detail, ...(hint === undefined ? {} : { hint }) }));
  ordered['accelerator'] = { chosen: report.accelerator.chosen, reason: report.accelerator.reason };
  return ordered as unknown as HostReport;
}

/** The host API over HTTP (UNIX socket or HTTPS): the daemon's host is checked. */
export class RemoteHost implements HostApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async check(request: HostCheckRequest): Promise<HostReport> {
    const query = new URLSearchParams();
    if (request.refresh === true) query.set('refresh', 'true');
    if (request.cpuinfoPath !== undefined) query.set('cpuinfo', request.cpuinfoPath);
    const q = query.toString();
    return orderedHostReport((await this.client.request<HostReport>('GET', `/host/check${q === '' ? '' : `?${q}`}`)).body);
  }
}
