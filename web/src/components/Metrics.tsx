import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { instanceTotal, parsePrometheus } from '../metrics.ts';
import { Chart } from './Chart.tsx';

const POINTS = 60;
const INTERVAL_MS = 2_000;

interface Series {
  cpu: number[];
  rss: number[];
  diskRead: number[];
  diskWrite: number[];
  netRx: number[];
  netTx: number[];
}

const bytes = (v: number) => (v >= 1 << 30 ? `${(v / (1 << 30)).toFixed(1)} GiB` : v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(1)} KiB`);
const rate = (v: number) => `${bytes(v)}/s`;

/** CPU, memory, disk and network of one instance, from the daemon's /metrics, sampled while the tab is open. */
export function Metrics({ name }: { name: string }) {
  const [series, setSeries] = useState<Series>({ cpu: [], rss: [], diskRead: [], diskWrite: [], netRx: [], netTx: [] });
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    let previous: { at: number; values: Record<string, number | undefined> } | undefined;
    const push = (list: number[], value: number | undefined) => (value === undefined ? list : [...list, value].slice(-POINTS));
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
    <div class="charts">
      {error !== undefined && <p class="error">{error}</p>}
      <Chart title="CPU" points={series.cpu} format={(v) => `${v.toFixed(0)} %`} />
      <Chart title="Memory (RSS)" points={series.rss} format={bytes} />
      <Chart title="Disk read" points={series.diskRead} format={rate} />
      <Chart title="Disk write" points={series.diskWrite} format={rate} />
      <Chart title="Network in" points={series.netRx} format={rate} />
      <Chart title="Network out" points={series.netTx} format={rate} />
    </div>
  );
}
