import { readFileSync } from 'node:fs';
import type { RuntimePaths } from '../../../qemu/spec.ts';
import { type BlockStats, queryBalloon, queryBlockstats } from '../../../qmp/commands.ts';
import { QmpConnection } from '../../../qmp/connection.ts';
import { GuestAgent } from '../../../qmp/guest-agent.ts';
import { agentPortOpenOn } from '../../agent-port.ts';
import type { BlockCounters, DriverSample, NicCounters } from '../../driver.ts';
import type { Instance } from '../../model.ts';

const QMP_TIMEOUT_MS = 1_000;
const AGENT_TIMEOUT_MS = 1_000;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux architecture virtnode runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * A QEMU's counters: CPU seconds and RSS of the process (/proc), block bytes and operations (QMP
 * query-blockstats) and the balloon's size (query-balloon) over the query monitor, never the control one, and,
 * when asked, the guest's own NIC counters through its agent (user-mode networking runs inside QEMU, which
 * exposes no counters for it).
 */
export async function sampleQemu(instance: Instance, paths: RuntimePaths, options: { guestNics: boolean }): Promise<DriverSample> {
  const sample: DriverSample = { block: [] };
  const usage = instance.pid === undefined ? undefined : processUsage(instance.pid);
  if (usage !== undefined) {
    sample.cpuSeconds = usage.cpuSeconds;
    sample.rssBytes = usage.rssBytes;
    const overhead = qemuOverheadBytes(instance.pid!, usage.rssAnonBytes, instance.spec.memoryMiB, instance.spec.tuning?.numaNodes ?? 1, instance.spec.runtime?.memoryPadKiB ?? 0);
    if (overhead !== undefined) sample.overheadBytes = overhead;
  }
  const qmp = await qmpStats(paths.qmpQuery, options.guestNics);
  const guestNics = options.guestNics && qmp.agentPortOpen !== false ? await agentNicCounters(paths.guestAgent) : undefined;
  sample.block = qmp.block;
  // A padded guest's balloon starts at the configured size plus the padding: reported as configured (at most).
  if (qmp.balloonBytes !== undefined) sample.balloonBytes = instance.spec.runtime?.memoryPadKiB === undefined ? qmp.balloonBytes : Math.min(qmp.balloonBytes, instance.spec.memoryMiB * 1024 * 1024);
  if (guestNics !== undefined) sample.guestNics = guestNics;
  return sample;
}

/** CPU seconds (user + system, all QEMU threads), RSS and its anonymous part of a process, from /proc. */
function processUsage(pid: number): { cpuSeconds: number; rssBytes: number; rssAnonBytes: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the line)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND, rssBytes: kib('VmRSS') * 1024, rssAnonBytes: kib('RssAnon') * 1024 };
  } catch {
    return undefined; // it ended between the listing and now
  }
}

/**
 * What QEMU itself costs in memory: its private anonymous resident memory minus the guest's RAM (the writable,
 * non-executable mappings exactly the size of the guest's memory or of one NUMA node's share). File-backed pages
 * (QEMU's binary, a -kernel image) are page cache, shared and reclaimable, and not counted.
 */
function qemuOverheadBytes(pid: number, rssAnonBytes: number, memoryMiB: number, numaNodes: number, padKiB: number): number | undefined {
  let smaps: string;
  try {
    smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  // Each RAM block's mapping is its share of the memory plus the padding (qemu/ram-pad.ts).
  return Math.max(0, rssAnonBytes - guestRamResidentBytes(smaps, (memoryMiB * 1024) / numaNodes + padKiB));
}

/**
 * The resident anonymous bytes of the guest-RAM mappings in an smaps text (see qemuOverheadBytes): a mapping's
 * `Anonymous:` when smaps gives it, else its `Rss:` (the same for anonymous memory). A warm launch's RAM is a
 * private mapping of the template's RAM file: its pages still shared with the file are resident but not
 * anonymous (not in RssAnon either), so only the pages the guest changed count.
 */
export function guestRamResidentBytes(smaps: string, nodeSizeKiB: number): number {
  let guestRam = false;
  let total = 0;
  let rss: number | undefined;
  let anonymous: number | undefined;
  const close = () => {
    if (guestRam) total += (anonymous ?? rss ?? 0) * 1024;
    rss = anonymous = undefined;
  };
  const kib = (line: string) => Number(/(\d+)/.exec(line)?.[1] ?? 0);
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) /.exec(line);
    if (header !== null) {
      close();
      guestRam = header[1]!.startsWith('rw') && header[1]![2] !== 'x';
      continue;
    }
    if (line.startsWith('Size:')) guestRam &&= kib(line) === nodeSizeKiB;
    else if (line.startsWith('Rss:')) rss = kib(line);
    else if (line.startsWith('Anonymous:')) anonymous = kib(line);
  }
  close();
  return total;
}

function blockCountersOf(reply: BlockStats[]): BlockCounters[] {
  return reply.map((b) => ({
    // qdev is /machine/peripheral/<id>/virtio-backend; the id is `<disk id>-dev` (src/qemu/argv.ts).
    device: b['node-name'] || /peripheral\/([^/]+)-dev/.exec(b.qdev ?? '')?.[1] || b.device || 'unknown',
    rdBytes: b.stats.rd_bytes,
    wrBytes: b.stats.wr_bytes,
    rdOps: b.stats.rd_operations,
    wrOps: b.stats.wr_operations,
  }));
}

/** Block statistics, the balloon's size and (with `agentPort`) whether the guest agent's port is open, over one QMP connection. */
async function qmpStats(socket: string, agentPort: boolean): Promise<{ block: BlockCounters[]; balloonBytes?: number; agentPortOpen?: boolean }> {
  let qmp: QmpConnection | undefined;
  try {
    qmp = await QmpConnection.connect(socket, { timeoutMs: QMP_TIMEOUT_MS });
    const block = blockCountersOf(await queryBlockstats(qmp, { timeoutMs: QMP_TIMEOUT_MS }));
    const open = agentPort ? await agentPortOpenOn(qmp, QMP_TIMEOUT_MS) : undefined;
    const agent = open === undefined ? {} : { agentPortOpen: open };
    try {
      const balloon = await queryBalloon(qmp, { timeoutMs: QMP_TIMEOUT_MS });
      return typeof balloon.actual === 'number' ? { block, balloonBytes: balloon.actual, ...agent } : { block, ...agent };
    } catch {
      return { block, ...agent }; // a QEMU started before instances had a balloon: "No balloon device has been activated"
    }
  } catch {
    return { block: [] }; // busy or going away: no QMP numbers this round
  } finally {
    qmp?.close();
  }
}

/** The guest's interface counters by MAC, from its agent (guest-network-get-interfaces); undefined if it does not answer. */
async function agentNicCounters(socket: string): Promise<Map<string, NicCounters> | undefined> {
  let agent: GuestAgent | undefined;
  try {
    agent = await GuestAgent.connect(socket, { timeoutMs: AGENT_TIMEOUT_MS });
    const counters = new Map<string, NicCounters>();
    for (const i of await agent.networkGetInterfaces({ timeoutMs: AGENT_TIMEOUT_MS })) {
      if (i.hardwareAddress !== undefined && i.statistics !== undefined) counters.set(i.hardwareAddress.toLowerCase(), i.statistics);
    }
    return counters;
  } catch {
    return undefined; // no agent in this guest, not up yet, or paused
  } finally {
    agent?.close();
  }
}
