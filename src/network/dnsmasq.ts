import { readFileSync } from 'node:fs';
import { run } from '../exec/run.ts';
import { processCmdline } from '../lib/proc.ts';
import type { DnsmasqFiles } from './dnsmasq-config.ts';

const DNSMASQ_TIMEOUT_MS = 15_000;

/** The pid of this network's dnsmasq, if one runs (checked against its command line, so a reused pid is ignored). */
export function dnsmasqPid(files: DnsmasqFiles): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(files.pidfile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cmdline = processCmdline(pid);
  return cmdline.includes(`--conf-file=${files.config}`) ? pid : undefined;
}

/** Starts dnsmasq (it daemonizes and writes its pidfile before the parent exits), or makes it re-read its hosts files. */
export async function startOrReloadDnsmasq(files: DnsmasqFiles, options: { restart?: boolean } = {}): Promise<void> {
  const pid = dnsmasqPid(files);
  if (pid !== undefined && !options.restart) {
    process.kill(pid, 'SIGHUP'); // re-reads dhcp-hostsfile and addn-hosts
    return;
  }
  if (pid !== undefined) await stopDnsmasq(files);
  await run(['dnsmasq', `--conf-file=${files.config}`], { timeoutMs: DNSMASQ_TIMEOUT_MS });
}

export async function stopDnsmasq(files: DnsmasqFiles): Promise<void> {
  const pid = dnsmasqPid(files);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && dnsmasqPid(files) === pid) await new Promise((r) => setTimeout(r, 20));
  if (dnsmasqPid(files) === pid) process.kill(pid, 'SIGKILL');
}
