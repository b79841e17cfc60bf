import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { instanceTotal, parsePrometheus } from '../metrics.ts';
import { Chart, type Point } from './Chart.tsx';

const INTERVAL_MS = 2_000;
/** The time ranges to show; the page keeps samples for the longest (the daemon keeps no history). */
const RANGES = [
  { label: 'last 2 minutes', ms: 2 * 60_000 },
  { label: 'last 5 minutes', ms: 5 * 60_000 },
  { label: 'last 15 minutes', ms: 15 * 60_000 },
] as const;
const KEEP_MS = RANGES.at(-1)!.ms;

interface Series {
  cpu: Point[];
  rss: Point[];
  diskRead: Point[];
  diskWrite: Point[];
  netRx: Point[];
  netTx: Point[];
}

const bytes = (v: number) => (v >= 1 << 30 ? `${(v / (1 << 30)).toFixed(1)} GiB` : v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(1)} KiB`);
const rate = (v: number) => `${bytes(v)}/s`;

/** CPU, memory, disk and network of one instance, from the daemon's /metrics, sampled while the tab is open. */
export function Metrics({ name }: { name: string }) {
  const [series, setSeries] = useState<Series>({ cpu: [], rss: [], diskRead: [], diskWrite: [], netRx: [], netTx: [] });
  const [error, setError] = useState<string | undefined>();
  const [range, setRange] = useState<number>(RANGES[0].ms);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    let previous: { at: number; values: Record<string, number | undefined> } | undefined;
    const push = (list: Point[], value: number | undefined) => {
      const t = Date.now();
      const kept = list.filter((p) => p.t >= t - KEEP_MS);
      return value === undefined ? kept : [...kept, { t, v: value }];
    };
    const sample = async () => {
      try {
        const samples = parsePrometheus(await api.metrics());
        const at = performance.now();
        const values = {
          cpu: instanceTotal(samples, 'virtnode_instance_cpu_seconds_total', name),
          rss: instanceTotal(samples, 'virtnode_instance_memory_rss_bytes', name),
          rd: instanceTotal(samples, 'virtnode_instance_block_read_bytes_total', name),
          wr: instanceTotal(samples, 'virtnode_instance_block_write_bytes_total', name),
          rx: instanceTotal(samples, 'virtnode_instance_network_receive_bytes_total', name),
          tx: instanceTotal(samples, 'virtnode_instance_network_transmit_bytes_total', name),
        };
        const last = previous;
        previous = { at, values };
        setError(undefined);
        const perSecond = (key: keyof typeof values) => {
          const now = values[key];
          const before = last?.values[key];
          if (last === undefined || now === undefined || before === undefined) return undefined;
          return Math.max(0, (now - before) / ((at - last.at) / 1000));
        };
        setNow(Date.now());
        setSeries((s) => ({
          cpu: push(s.cpu, perSecond('cpu') === undefined ? undefined : perSecond('cpu')! * 100),
          rss: push(s.rss, values.rss),
          diskRead: push(s.diskRead, perSecond('rd')),
          diskWrite: push(s.diskWrite, perSecond('wr')),
          netRx: push(s.netRx, perSecond('rx')),
          netTx: push(s.netTx, perSecond('tx')),
        }));
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
    };
    void sample();
    const timer = setInterval(() => void sample(), INTERVAL_MS);
    return () => clearInterval(timer);
  }, [name]);

  return (
    <div class="metrics">
      <div class="console-bar">
        <label for="metrics-range">Time range</label>
        <select id="metrics-range" name="range" value={String(range)} onChange={(e) => setRange(Number((e.target as HTMLSelectElement).value))}>
          {RANGES.map((r) => (
            <option value={String(r.ms)}>{r.label}</option>
          ))}
        </select>
        <span class="muted">sampled every {INTERVAL_MS / 1000} s while this page is open</span>
      </div>
      {error !== undefined && <p class="error">{error}</p>}
      <div class="charts">
      <Chart from={now - range} to={now} title="CPU" points={series.cpu} format={(v) => `${v.toFixed(0)} %`} />
      <Chart from={now - range} to={now} title="Memory (RSS)" points={series.rss} format={bytes} />
      <Chart from={now - range} to={now} title="Disk read" points={series.diskRead} format={rate} />
      <Chart from={now - range} to={now} title="Disk write" points={series.diskWrite} format={rate} />
      <Chart from={now - range} to={now} title="Network in" points={series.netRx} format={rate} />
      <Chart from={now - range} to={now} title="Network out" points={series.netTx} format={rate} />
      </div>
    </div>
  );
}
