import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Instance, InstanceState } from '../instances/model.ts';
import { rotateConsoleLog } from '../instances/console-log.ts';
import { observeInstance } from '../instances/observe.ts';
import type { InstanceService } from '../instances/service.ts';
import { toVirtnodeError } from '../lib/errors.ts';
import type { PolicyRepository } from '../store/policies.ts';
import type { EventBus } from './events.ts';
import { operationScope } from './operation-scope.ts';

export const WATCH_INTERVAL_MS = 1_000;
/** A guest that keeps dying is left alone after this many restarts within RESTART_WINDOW_MS. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 5 * 60_000;
const GUEST_POWERED_OFF = 'the guest powered itself off';

export interface SupervisorReport {
  adopted: string[];
  crashed: string[];
  restarted: string[];
  autostarted: string[];
  durationMs: number;
}

/**
 * Keeps instances in line with their policies while the daemon runs. At start: reconcile (finish or undo
 * interrupted operations), re-adopt running QEMUs (never restarted: their records hold pid and start time),
 * start autostart instances once per host boot, and restart crashed ones under their restart policy. Then it
 * watches: every second it observes running instances (liveness from /proc, status over the query monitor),
 * publishes state changes, and applies the restart policy.
 *
 * Why polling and not a QMP event connection: the query monitor is a single-client socket that `virtnode list`
 * also uses; holding it open would make every CLI observation fail while the daemon runs.
 */
export class Supervisor {
  private readonly service: InstanceService;
  private readonly policies: PolicyRepository;
  private readonly events: EventBus;
  private readonly log: Logger;
  private known = new Map<string, { state: InstanceState; reason: string | undefined }>();
  private readonly restarts = new Map<string, number[]>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(service: InstanceService, policies: PolicyRepository, events: EventBus, log: Logger) {
    this.service = service;
    this.policies = policies;
    this.events = events;
    this.log = log;
  }

  async start(options: { autostartMarkerDir: string }): Promise<SupervisorReport> {
    const started = Date.now();
    const report: SupervisorReport = { adopted: [], crashed: [], restarted: [], autostarted: [], durationMs: 0 };
    await this.service.ensureReconciled();
    const before = this.service.repo.list();
    const observed = await Promise.all(before.map((i) => observeInstance(this.service.core, i).catch(() => i)));
    const firstSinceBoot = this.claimAutostart(options.autostartMarkerDir);
    const policies = this.policies.all();
    const toStart: Array<{ name: string; why: 'restart' | 'autostart' }> = [];
    for (const [n, instance] of observed.entries()) {
      const was = before[n]!;
      const policy = policies.get(instance.name);
      if ((instance.state === 'running' || instance.state === 'paused') && instance.pid !== undefined) report.adopted.push(instance.name);
      if (instance.state === 'crashed') {
        report.crashed.push(instance.name);
        if (was.state !== 'crashed') this.log.warn({ instance: instance.name, reason: instance.stateReason }, 'instance crashed while the daemon was down');
        if (policy !== undefined && policy.restart !== 'no') toStart.push({ name: instance.name, why: 'restart' });
      } else if (firstSinceBoot && policy?.autostart && ['defined', 'stopped'].includes(instance.state)) {
        toStart.push({ name: instance.name, why: 'autostart' });
      }
    }
    this.known = new Map(observed.map((i) => [i.name, { state: i.state, reason: i.stateReason }]));
    for (const i of observed) {
      if (i.state !== before.find((b) => b.name === i.name)?.state) this.publish(i, before.find((b) => b.name === i.name)?.state);
    }
    // sinceProcessStartMs: from the start of this process (Node's own start-up included) to every guest adopted.
    this.log.info({ adopted: report.adopted, crashed: report.crashed, durationMs: Date.now() - started, sinceProcessStartMs: Math.round(process.uptime() * 1000) }, 'instances re-adopted');
    // Starting takes a while under TCG: do it in the background, the API is already useful.
    void Promise.all(
      toStart.map(async ({ name, why }) => {
        if (await this.startInstance(name, why === 'restart' ? 'restart policy after a crash' : 'autostart')) {
          (why === 'restart' ? report.restarted : report.autostarted).push(name);
        }
      }),
    ).then(() => this.poke());
    this.timer = setInterval(() => this.poke(), WATCH_INTERVAL_MS);
    this.timer.unref();
    report.durationMs = Date.now() - started;
    return report;
  }

  /** Looks at the instances now (after an API operation, so its events go out at once). */
  poke(): void {
    if (this.stopped) return;
    if (this.ticking !== undefined) {
      this.again = true;
      return;
    }
    // Not part of the operation that poked it: its lines must not carry that operation's id.
    this.ticking = operationScope
      .exit(() => this.tick())
      .catch((e) => this.log.error({ err: toVirtnodeError(e) }, 'watching instances failed'))
      .finally(() => {
        this.ticking = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.ticking;
  }

  private async tick(): Promise<void> {
    // States only (cheap with thousands of instances); full records just for the ones with a QEMU to observe.
    const rows = this.service.db.prepare('SELECT name, state, state_reason FROM instances').all() as Array<{ name: string; state: InstanceState; state_reason: string | null }>;
    const current = await Promise.all(
      rows.map(async (row): Promise<Pick<Instance, 'name' | 'state' | 'stateReason'>> => {
        const brief = { name: row.name, state: row.state, stateReason: row.state_reason ?? undefined };
        if (row.state !== 'running' && row.state !== 'paused') return brief;
        const instance = this.service.repo.get(row.name);
        if (instance === undefined) return brief;
        try {
          rotateConsoleLog(this.service.driver(instance).consoles(instance).serialLog);
        } catch (e) {
          this.log.warn({ instance: row.name, err: toVirtnodeError(e) }, 'could not rotate the console log');
        }
        return observeInstance(this.service.core, instance).catch(() => instance);
      }),
    );
    const seen = new Set<string>();
    for (const instance of current) {
      seen.add(instance.name);
      const previous = this.known.get(instance.name);
      if (previous !== undefined && previous.state === instance.state && previous.reason === instance.stateReason) continue;
      this.known.set(instance.name, { state: instance.state, reason: instance.stateReason });
      this.publish(instance, previous?.state);
      if (previous !== undefined && previous.state !== instance.state) this.applyRestartPolicy(instance);
    }
    for (const name of [...this.known.keys()]) {
      if (seen.has(name)) continue;
      const previous = this.known.get(name);
      this.known.delete(name);
      this.events.publish({ type: 'instance', name, state: 'deleted', previous: previous?.state, at: new Date().toISOString() });
    }
  }

  private applyRestartPolicy(instance: Pick<Instance, 'name' | 'state' | 'stateReason'>): void {
    const policy = this.policies.get(instance.name);
    const crashed = instance.state === 'crashed';
    const poweredOff = instance.state === 'stopped' && instance.stateReason === GUEST_POWERED_OFF;
    if (!(crashed && policy.restart !== 'no') && !(poweredOff && policy.restart === 'always')) return;
    const now = Date.now();
    const recent = (this.restarts.get(instance.name) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
    if (recent.length >= MAX_RESTARTS) {
      this.log.error({ instance: instance.name, restarts: recent.length }, 'instance keeps ending: restart policy suspended');
      return;
    }
    this.restarts.set(instance.name, [...recent, now]);
    void this.startInstance(instance.name, `restart policy ${policy.restart}`).then(() => this.poke());
  }

  private async startInstance(name: string, why: string): Promise<boolean> {
    try {
      const instance = await this.service.start(name, { lockWaitMs: 30_000 });
      this.log.info({ instance: name, pid: instance.pid, why }, 'instance started');
      return true;
    } catch (e) {
      this.log.error({ instance: name, why, err: toVirtnodeError(e) }, 'could not start instance');
      return false;
    }
  }

  private publish(instance: Pick<Instance, 'name' | 'state' | 'stateReason'>, previous: InstanceState | undefined): void {
    this.events.publish({
      type: 'instance',
      name: instance.name,
      state: instance.state,
      previous,
      ...(instance.stateReason === undefined ? {} : { reason: instance.stateReason }),
      at: new Date().toISOString(),
    });
  }

  /**
   * Autostart runs once per host boot (like libvirt's marker in /run): the state directory remembers the boot id
   * it last autostarted in, so restarting the daemon does not start what a user stopped on purpose.
   */
  private claimAutostart(markerDir: string): boolean {
    const marker = join(markerDir, 'autostarted-boot-id');
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === bootId) return false;
    mkdirSync(markerDir, { recursive: true, mode: 0o700 });
    writeFileSync(marker, `${bootId}\n`);
    return true;
  }
}
