import { describe, expect, it } from 'vitest';
import { instanceTotal, parsePrometheus } from '../../web/src/metrics.ts';

describe('the web UI reading /metrics', () => {
  const text = [
    '# HELP virtnode_instance_cpu_seconds_total CPU time',
    '# TYPE virtnode_instance_cpu_seconds_total counter',
    'virtnode_instance_cpu_seconds_total{instance="web"} 12.5',
    'virtnode_instance_cpu_seconds_total{instance="db"} 3',
    'virtnode_instance_block_read_bytes_total{instance="web",device="disk0"} 1024',
    'virtnode_instance_block_read_bytes_total{instance="web",device="disk1"} 2048',
    'virtnode_instance_state{instance="we\\"b",state="running"} 1',
    'virtnode_host_cpus 2',
    'garbage line without a value',
    '',
  ].join('\n');

  it('parses samples with labels (escapes included) and skips comments and junk', () => {
    const samples = parsePrometheus(text);
    expect(samples).toHaveLength(6);
    expect(samples.find((s) => s.name === 'virtnode_instance_state')?.labels).toEqual({ instance: 'we"b', state: 'running' });
    expect(samples.find((s) => s.name === 'virtnode_host_cpus')).toEqual({ name: 'virtnode_host_cpus', labels: {}, value: 2 });
  });

  it("sums one instance's series over devices; undefined when it has none", () => {
    const samples = parsePrometheus(text);
    expect(instanceTotal(samples, 'virtnode_instance_cpu_seconds_total', 'web')).toBe(12.5);
    expect(instanceTotal(samples, 'virtnode_instance_block_read_bytes_total', 'web')).toBe(3072);
    expect(instanceTotal(samples, 'virtnode_instance_block_read_bytes_total', 'db')).toBeUndefined();
  });
});
