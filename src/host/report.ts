import type { CheckStatus } from './checks.ts';
import type { HostReport } from './check-host.ts';

const STATUS_WIDTH = 6;
const HINT_INDENT = ' '.repeat(STATUS_WIDTH);

/**
 * Human lines, one per check: `PASS  Title: detail`, a `      hint: ...` line under WARN and FAIL, then the
 * accelerator that guests will use and why.
 */
export function formatHostReport(report: Pick<HostReport, 'checks' | 'accelerator'>): string {
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${c.status.padEnd(STATUS_WIDTH)}${c.title}: ${c.detail}`);
    if (c.status !== 'PASS' && c.hint !== undefined) lines.push(`${HINT_INDENT}hint: ${c.hint}`);
  }
  lines.push(`Accelerator: ${report.accelerator.chosen} (${report.accelerator.reason})`);
  return `${lines.join('\n')}\n`;
}

export function countByStatus(report: Pick<HostReport, 'checks'>): Record<CheckStatus, number> {
  const counts: Record<CheckStatus, number> = { PASS: 0, WARN: 0, FAIL: 0 };
  for (const c of report.checks) counts[c.status] += 1;
  return counts;
}
