/**
 * The identity of a warm-launched guest, given through its agent right after the load (the guest has no NIC
 * address, no hostname, no keys of its own yet): its clock, then the job of src/instances/warm-first-boot.py
 * (saved waiting in the warm state): a fresh machine-id, host entropy and the instance's NoCloud seed; it runs
 * cloud-init's stages for the new instance.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { VirtnodeError } from '../lib/errors.ts';
import { sleep } from '../qmp/abortable.ts';
import { GuestAgent } from '../qmp/guest-agent.ts';
import { type CloudInitResult, parseCloudInitStatus } from './readiness.ts';

const AGENT_CONNECT_TIMEOUT_MS = 30_000;
const AGENT_TRY_MS = 2_000;
const FIRST_BOOT_TIMEOUT_MS = 10 * 60_000;

/**
 * Modules a warm first boot leaves out unless the instance's user-data has one of their keys (a cold first boot
 * runs them): growpart, resizefs, grub_dpkg and apt_configure, whose result is already on the template's disk (its
 * source ran them at its first boot, and a warm launch keeps the disk size), and keys_to_console and
 * ssh_authkey_fingerprints, which set nothing: they print the host keys' and the authorized keys' fingerprints on
 * the console (virtnode recorded the host keys and checks them on every SSH connection; the authorized keys are
 * the ones the launch gave). Each costs time under TCG.
 */
const SKIPPED_MODULES: Record<string, string[]> = {
  growpart: ['growpart'],
  resizefs: ['resize_rootfs'],
  grub_dpkg: ['grub_dpkg', 'grub-dpkg'],
  apt_configure: ['apt', 'apt_preserve_sources_list', 'apt_mirror', 'apt_mirror_search', 'apt_mirror_search_dns', 'apt_sources', 'apt_proxy', 'apt_http_proxy', 'apt_ftp_proxy', 'apt_https_proxy', 'apt_config'],
  keys_to_console: ['ssh', 'no_ssh_fingerprints', 'ssh_fp_console_blacklist', 'ssh_key_console_blacklist'],
  ssh_authkey_fingerprints: ['no_ssh_fingerprints', 'authkey_hash'],
};

/** The modules to leave out: all of them unless the user-data is a cloud-config that configures them (any other kind of user-data: none). */
export function modulesToSkip(userData: string): string[] {
  let keys: Set<string>;
  if (userData.startsWith('#cloud-config')) {
    const parsed = parse(userData) as unknown;
    keys = new Set(parsed !== null && typeof parsed === 'object' ? Object.keys(parsed) : []);
  } else if (userData.startsWith('#!')) {
    keys = new Set();
  } else {
    return [];
  }
  return Object.entries(SKIPPED_MODULES)
    .filter(([, configKeys]) => !configKeys.some((k) => keys.has(k)))
    .map(([module]) => module);
}

export interface WarmFirstBoot {
  instanceId: string;
  /** meta-data, user-data, network-config: the same files a cold launch puts on its seed disk. */
  seed: Record<string, string>;
  /** The saved program sets the clock from the job (WarmModel.clockFromJob); otherwise guest-set-time first. */
  clockFromJob?: boolean;
  /** The saved program takes its job and gives its report in files (WarmModel.jobInFiles); otherwise through a shell. */
  jobInFiles?: boolean;
  signal?: AbortSignal;
}

export interface WarmFirstBootResult {
  machineId: string;
  /** cloud-init stages that reported errors. */
  failedStages: string[];
  /**
   * cloud-init's verdict once its stages ended, read in the guest as `cloud-init status --long` reads it;
   * undefined from a warm state saved before first-boot programs reported it (then it is asked over SSH).
   */
  cloudInit: CloudInitResult | undefined;
  /** Seconds of each step of the first boot in the guest (prepare, init-local, init-network, modules-config, ...). */
  steps: Record<string, number>;
  /** This boot's slowest cloud-init events, from cloud-init's own log: [name, seconds]. */
  slowest: Array<[string, number]>;
  /** The programs cloud-init ran (its subp): how many, their seconds in all, the slowest ([program and first argument, seconds]). */
  commands?: Commands;
  ms: number;
}

interface Commands {
  count: number;
  seconds: number;
  slowest: Array<[string, number]>;
}

interface Report {
  failedStages?: string[];
  error?: string;
  cloudInitStatus?: string;
  steps?: Record<string, number>;
  slowest?: Array<[string, number]>;
  commands?: Commands;
  profile?: string;
}

/**
 * A directory to profile warm first boots into (for bench/ and by hand): each one's cloud-init stages then run
 * under cProfile in the guest (slower: only for finding hot spots), its pstats text written as INSTANCE-ID.txt.
 */
function profileDir(): string | undefined {
  return process.env['VIRTNODE_WARM_PROFILE'] || undefined;
}

async function connectAgent(path: string, signal?: AbortSignal): Promise<GuestAgent> {
  const deadline = Date.now() + AGENT_CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      return await GuestAgent.connect(path, { timeoutMs: AGENT_TRY_MS, ...(signal ? { signal } : {}) });
    } catch (e) {
      if (signal?.aborted || Date.now() > deadline) throw new VirtnodeError('TIMEOUT', 'the guest agent of the loaded warm state did not answer', { cause: e });
    }
  }
}

/** Where the first-boot program, saved waiting in the warm state, takes its job and gives its report. */
const RUN_DIR = '/run/virtnode-warm';
/** The program waits on this FIFO; opening it for writing wakes it. */
const JOB_FIFO = `${RUN_DIR}/job`;
const JOB_FILE = `${RUN_DIR}/job.json`;
const REPORT_FILE = `${RUN_DIR}/report.json`;
/** Programs saved before they took their job from a file report into this FIFO. */
const RESULT_FIFO = `${RUN_DIR}/result`;
const REPORT_POLL_MS = 100;
const FIRST_BOOT_HINT = 'see journalctl -u virtnode-warm-first-boot and /var/log/cloud-init.log in the guest; a cold launch (--cold) boots instead';

/**
 * Gives the job and waits for the report with the agent's file commands: nothing is started in the guest for
 * either (a shell and two `cat`s cost the guest a few tenths of a second under TCG, every launch).
 */
async function runThroughFiles(agent: GuestAgent, input: string, signal?: AbortSignal): Promise<string> {
  const options = signal === undefined ? {} : { signal };
  await agent.writeFile(JOB_FILE, input, options);
  // The agent opens without blocking: a FIFO nobody reads is refused at once (ENXIO) instead of hanging.
  await agent.writeFile(JOB_FIFO, '\n', options).catch((e: unknown) => {
    throw new VirtnodeError('COMMAND_FAILED', `the first-boot program of the warm state is not waiting in the guest`, { hint: FIRST_BOOT_HINT, cause: e });
  });
  const deadline = Date.now() + FIRST_BOOT_TIMEOUT_MS;
  for (;;) {
    const report = await agent.readFile(REPORT_FILE, options);
    if (report !== undefined) return report.toString('utf8');
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `the warm first boot did not report within ${FIRST_BOOT_TIMEOUT_MS / 60_000} minutes`, { hint: FIRST_BOOT_HINT });
    await sleep(REPORT_POLL_MS, signal, 'waiting for the warm first boot');
  }
}

/** The same through a shell in the guest, for programs saved before they took their job from a file. */
async function runThroughShell(agent: GuestAgent, input: string, signal?: AbortSignal): Promise<string> {
  const r = await agent.exec('/bin/sh', ['-c', 'cat > "$1" && cat "$2"', 'sh', JOB_FIFO, RESULT_FIFO], { input, timeoutMs: FIRST_BOOT_TIMEOUT_MS, ...(signal === undefined ? {} : { signal }) });
  if (r.exitCode !== 0) throw new VirtnodeError('COMMAND_FAILED', `the warm first boot failed in the guest: exit ${r.exitCode}: ${r.stderr.trim()}`, { hint: FIRST_BOOT_HINT });
  return r.stdout;
}

export async function warmFirstBoot(agentPath: string, job: WarmFirstBoot): Promise<WarmFirstBootResult> {
  const started = Date.now();
  const signal = job.signal === undefined ? {} : { signal: job.signal };
  const machineId = randomBytes(16).toString('hex');
  const agent = await connectAgent(agentPath, job.signal);
  try {
    // The guest's clock stopped when the state was saved. The program sets it from the job's time, first thing
    // (the hardware clock needs nothing: QEMU's RTC follows the host's clock across the save); a program saved
    // before it did that gets guest-set-time, which also runs `hwclock -w` in the guest (3 s under TCG).
    if (job.clockFromJob !== true) await agent.setTime(BigInt(Date.now()) * 1_000_000n, signal);
    const skip = modulesToSkip(job.seed['user-data'] ?? '');
    const profile = profileDir();
    const input = JSON.stringify({
      timeNs: String(BigInt(Date.now()) * 1_000_000n),
      machineId,
      instanceId: job.instanceId,
      skip,
      entropy: randomBytes(64).toString('hex'),
      seed: job.seed,
      ...(profile === undefined ? {} : { profile: true }),
    });
    const text = await (job.jobInFiles === true ? runThroughFiles : runThroughShell)(agent, input, job.signal);
    let report: Report | undefined;
    try {
      report = JSON.parse(text.trim()) as Report;
    } catch {
      report = undefined;
    }
    if (report === undefined || report.error !== undefined) {
      throw new VirtnodeError('COMMAND_FAILED', `the warm first boot failed in the guest: ${report?.error?.trim().split('\n').at(-1) ?? `an unreadable report: ${text.slice(0, 200)}`}`, { hint: FIRST_BOOT_HINT });
    }
    if (profile !== undefined && report.profile !== undefined) {
      mkdirSync(profile, { recursive: true });
      writeFileSync(join(profile, `${job.instanceId}.txt`), report.profile, { mode: 0o600 });
    }
    return {
      machineId,
      failedStages: report.failedStages ?? [],
      cloudInit: report.cloudInitStatus === undefined ? undefined : parseCloudInitStatus(report.cloudInitStatus),
      steps: report.steps ?? {},
      slowest: report.slowest ?? [],
      ...(report.commands === undefined ? {} : { commands: report.commands }),
      ms: Date.now() - started,
    };
  } finally {
    agent.close();
  }
}

/** The launch's `booting` line for a warm first boot: its steps and cloud-init's slowest modules, in seconds. */
export function describeFirstBoot(first: WarmFirstBootResult): string {
  const s = (seconds: number) => `${seconds.toFixed(1)} s`;
  const steps = Object.entries(first.steps).map(([name, seconds]) => `${name} ${s(seconds)}`);
  const slowest = first.slowest.slice(0, 5).map(([name, seconds]) => `${name} ${s(seconds)}`);
  const commands = first.commands;
  return [
    `first boot through the guest agent in ${s(first.ms / 1000)}: clock, machine-id, entropy, cloud-init`,
    steps.length > 0 ? ` (${steps.join(', ')})` : '',
    slowest.length > 0 ? `; slowest: ${slowest.join(', ')}` : '',
    commands === undefined
      ? ''
      : `; ${commands.count} commands in ${s(commands.seconds)}${commands.slowest.length > 0 ? ` (${commands.slowest.slice(0, 5).map(([name, seconds]) => `${name} ${s(seconds)}`).join(', ')})` : ''}`,
    first.failedStages.length > 0 ? `; stages with errors: ${first.failedStages.join(', ')}` : '',
  ].join('');
}
