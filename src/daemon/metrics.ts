import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { BlockCounters, NicCounters } from '../instances/driver.ts';
import { type Instance, USER_NETWORK } from '../instances/model.ts';
import type { InstanceService } from '../instances/service.ts';
import { MIB } from '../lib/units.ts';
import { tapName } from '../network/names.ts';
import { readTapCounters, SYS_CLASS_NET } from './net-stats.ts';

export const METRICS_CACHE_MS = 2_000;
/** A guest whose agent did not answer is not asked again for this long, so it does not slow every scrape. */
const AGENT_RETRY_MS = 60_000;

/** Where a NIC's counters come from: the host's tap, or the guest's own kernel through its agent (user-mode NICs). */
type NicSource = 'tap' | 'guest-agent';

interface InstanceSample {
  name: string;
  state: string;
  memoryConfiguredBytes: number;
  cpuSeconds?: number;
  rssBytes?: number;
  overheadBytes?: number;
  balloonBytes?: number;
  block: BlockCounters[];
  nics: Array<NicCounters & { index: number; network: string; source: NicSource }>;
}

/**
 * Prometheus metrics of the host and its instances, collected at most every METRICS_CACHE_MS (a scrape is
 * cheap whatever the scraper's rate). Measured by each instance's driver: CPU seconds and RSS of each QEMU (/proc),
 * block bytes and operations (QMP query-blockstats), the balloon's size (QMP query-balloon); recorded: state,
 * configured memory; host CPUs, memory, load, instances by state.
 * Network bytes and packets of tap NICs on managed networks, from the tap's counters in /sys/class/net (seen
 * from the guest: receive is what the tap sent), label source="tap". User-mode NICs (that networking runs inside
 * QEMU, which exposes no counters for it): the guest kernel's counters through its agent, when one answers, label
 * source="guest-agent" (the guest's own numbers, so a guest could misreport them).
 */
export class MetricsCollector {
  readonly registry = new Registry();
  private readonly service: InstanceService;
  private cached: { at: number; text: Promise<string> } | undefined;
  private readonly g;

  private readonly sysfsNet: string;
  /** Instances whose agent did not answer, and until when it is not asked again. */
  private readonly agentSilentUntil = new Map<string, number>();

  constructor(service: InstanceService, options: { sysfsNet?: string } = {}) {
    this.service = service;
    this.sysfsNet = options.sysfsNet ?? SYS_CLASS_NET;
    const nicLabels = ['instance', 'nic', 'network', 'source'] as const;
    const r = [this.registry];
    const instanceLabel = ['instance'] as const;
    this.g = {
      state: new Gauge({ name: 'virtnode_instance_state', help: 'The instance state: 1 for the current state', labelNames: ['instance', 'state'], registers: r }),
      cpu: new Counter({ name: 'virtnode_instance_cpu_seconds_total', help: 'CPU time used by the instance QEMU process (user + system)', labelNames: instanceLabel, registers: r }),
      rss: new Gauge({ name: 'virtnode_instance_memory_rss_bytes', help: 'Resident memory of the instance QEMU process', labelNames: instanceLabel, registers: r }),
      overhead: new Gauge({
        name: 'virtnode_instance_memory_overhead_bytes',
        help: "QEMU's own private resident memory beyond the guest's RAM (RssAnon minus the guest-RAM mappings); under TCG it includes the JIT code buffer",
        labelNames: instanceLabel,
        registers: r,
      }),
      balloon: new Gauge({ name: 'virtnode_instance_memory_balloon_bytes', help: 'Memory the guest has, as its virtio balloon reports it (QMP query-balloon); the configured memory unless the balloon was inflated', labelNames: instanceLabel, registers: r }),
      memory: new Gauge({ name: 'virtnode_instance_memory_configured_bytes', help: 'Memory given to the guest', labelNames: instanceLabel, registers: r }),
      rdBytes: new Counter({ name: 'virtnode_instance_block_read_bytes_total', help: 'Bytes read by the guest from a disk', labelNames: ['instance', 'device'], registers: r }),
      wrBytes: new Counter({ name: 'virtnode_instance_block_write_bytes_total', help: 'Bytes written by the guest to a disk', labelNames: ['instance', 'device'], registers: r }),
      rdOps: new Counter({ name: 'virtnode_instance_block_read_ops_total', help: 'Read operations of the guest on a disk', labelNames: ['instance', 'device'], registers: r }),
      wrOps: new Counter({ name: 'virtnode_instance_block_write_ops_total', help: 'Write operations of the guest on a disk', labelNames: ['instance', 'device'], registers: r }),
      netRxBytes: new Counter({ name: 'virtnode_instance_network_receive_bytes_total', help: 'Bytes received by the guest on a NIC (source: the tap, or the guest agent for user-mode NICs)', labelNames: nicLabels, registers: r }),
      netTxBytes: new Counter({ name: 'virtnode_instance_network_transmit_bytes_total', help: 'Bytes sent by the guest on a NIC (source: the tap, or the guest agent for user-mode NICs)', labelNames: nicLabels, registers: r }),
      netRxPackets: new Counter({ name: 'virtnode_instance_network_receive_packets_total', help: 'Packets received by the guest on a NIC (source: the tap, or the guest agent for user-mode NICs)', labelNames: nicLabels, registers: r }),
      netTxPackets: new Counter({ name: 'virtnode_instance_network_transmit_packets_total', help: 'Packets sent by the guest on a NIC (source: the tap, or the guest agent for user-mode NICs)', labelNames: nicLabels, registers: r }),
      hostCpus: new Gauge({ name: 'virtnode_host_cpus', help: 'Logical CPUs of the host', registers: r }),
      hostMemory: new Gauge({ name: 'virtnode_host_memory_bytes', help: 'Memory of the host', registers: r }),
      hostMemoryFree: new Gauge({ name: 'virtnode_host_memory_free_bytes', help: 'Free memory of the host', registers: r }),
      hostLoad: new Gauge({ name: 'virtnode_host_load1', help: 'One-minute load average of the host', registers: r }),
      instances: new Gauge({ name: 'virtnode_instances', help: 'Instances by state', labelNames: ['state'], registers: r }),
      scrape: new Gauge({ name: 'virtnode_metrics_collect_seconds', help: 'How long the last collection took', registers: r }),
    };
    collectDefaultMetrics({ register: this.registry, prefix: 'virtnode_daemon_' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, collected anew only when the cached one is older than METRICS_CACHE_MS. */
  text(): Promise<string> {
    const now = Date.now();
    if (this.cached === undefined || now - this.cached.at > METRICS_CACHE_MS) {
      const text = this.collect().then(() => this.registry.metrics());
      text.catch(() => (this.cached = undefined));
      this.cached = { at: now, text };
    }
    return this.cached.text;
  }

  private async sample(instance: Instance): Promise<InstanceSample> {
    const sample: InstanceSample = { name: instance.name, state: instance.state, memoryConfiguredBytes: instance.spec.memoryMiB * MIB, block: [], nics: [] };
    if (instance.pid === undefined || !['running', 'paused', 'starting', 'stopping'].includes(instance.state)) return sample;
    for (const nic of instance.nics) {
      if (nic.network === USER_NETWORK) continue;
      const counters = readTapCounters(tapName(instance.uuid, nic.index), this.sysfsNet);
      if (counters !== undefined) sample.nics.push({ ...counters, index: nic.index, network: nic.network, source: 'tap' });
    }
    const userNics = instance.nics.filter((n) => n.network === USER_NETWORK);
    const askGuest = userNics.length > 0 && (this.agentSilentUntil.get(instance.uuid) ?? 0) <= Date.now();
    const measured = await this.service.driver(instance).sample(instance, { guestNics: askGuest });
    if (askGuest && measured.guestNics === undefined) this.agentSilentUntil.set(instance.uuid, Date.now() + AGENT_RETRY_MS);
    else if (askGuest) this.agentSilentUntil.delete(instance.uuid);
    for (const nic of userNics) {
      const counters = measured.guestNics?.get(nic.mac.toLowerCase());
      if (counters !== undefined) sample.nics.push({ ...counters, index: nic.index, network: nic.network, source: 'guest-agent' });
    }
    if (measured.cpuSeconds !== undefined) sample.cpuSeconds = measured.cpuSeconds;
    if (measured.rssBytes !== undefined) sample.rssBytes = measured.rssBytes;
    if (measured.overheadBytes !== undefined) sample.overheadBytes = measured.overheadBytes;
    sample.block = measured.block;
    if (measured.balloonBytes !== undefined) sample.balloonBytes = measured.balloonBytes;
    return sample;
  }

  private async collect(): Promise<void> {
    const started = performance.now();
    const samples = await Promise.all(this.service.repo.list().map((i) => this.sample(i)));
    const g = this.g;
    for (const metric of Object.values(g)) metric.reset();
    const byState = new Map<string, number>();
    for (const s of samples) {
      const l = { instance: s.name };
      byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
      g.state.set({ instance: s.name, state: s.state }, 1);
      g.memory.set(l, s.memoryConfiguredBytes);
      if (s.cpuSeconds !== undefined) g.cpu.inc(l, s.cpuSeconds);
      if (s.rssBytes !== undefined) g.rss.set(l, s.rssBytes);
      if (s.overheadBytes !== undefined) g.overhead.set(l, s.overheadBytes);
      if (s.balloonBytes !== undefined) g.balloon.set(l, s.balloonBytes);
      for (const b of s.block) {
        const bl = { instance: s.name, device: b.device };
        g.rdBytes.inc(bl, b.rdBytes);
        g.wrBytes.inc(bl, b.wrBytes);
        g.rdOps.inc(bl, b.rdOps);
        g.wrOps.inc(bl, b.wrOps);
      }
      for (const n of s.nics) {
        const nl = { instance: s.name, nic: String(n.index), network: n.network, source: n.source };
        g.netRxBytes.inc(nl, n.rxBytes);
        g.netTxBytes.inc(nl, n.txBytes);
        g.netRxPackets.inc(nl, n.rxPackets);
        g.netTxPackets.inc(nl, n.txPackets);
      }
    }
    for (const [state, count] of byState) g.instances.set({ state }, count);
    g.hostCpus.set(cpus().length);
    g.hostMemory.set(totalmem());
    g.hostMemoryFree.set(freemem());
    g.hostLoad.set(loadavg()[0]!);
    g.scrape.set((performance.now() - started) / 1000);
  }
}
