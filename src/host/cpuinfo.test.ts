import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hardwareVirtualization, hasFlag, parseCpuinfo } from './cpuinfo.ts';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/cpuinfo');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

describe('parseCpuinfo', () => {
  it('reads a captured AMD EPYC guest CPU: 2 CPUs, lm but no vmx/svm', () => {
    const cpu = parseCpuinfo(fixture('host-amd-epyc-no-svm.txt'));
    expect(cpu.vendor).toBe('AuthenticAMD');
    expect(cpu.model).toBe('AMD EPYC');
    expect(cpu.logicalCpus).toBe(2);
    expect(hasFlag(cpu, 'lm')).toBe(true);
    expect(hasFlag(cpu, 'hypervisor')).toBe(true);
    expect(hardwareVirtualization(cpu)).toBeUndefined();
    // lahf_lm is on the captured flags line; it must not be mistaken for anything else.
    expect(hasFlag(cpu, 'lahf_lm')).toBe(true);
    expect(cpu.flags).toHaveLength(new Set(cpu.flags).size);
  });

  it('finds vmx on an Intel Xeon and ignores the separate "vmx flags" line', () => {
    const cpu = parseCpuinfo(fixture('intel-xeon-vmx.txt'));
    expect(cpu.vendor).toBe('GenuineIntel');
    expect(cpu.model).toBe('Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz');
    expect(cpu.logicalCpus).toBe(2);
    expect(hardwareVirtualization(cpu)).toBe('vmx');
    expect(hasFlag(cpu, 'lm')).toBe(true);
    // Only on the "vmx flags" line, never on "flags".
    expect(hasFlag(cpu, 'preemption_timer')).toBe(false);
    expect(hasFlag(cpu, 'unrestricted_guest')).toBe(false);
  });

  it('finds svm on an AMD Ryzen', () => {
    const cpu = parseCpuinfo(fixture('amd-ryzen-svm.txt'));
    expect(cpu.vendor).toBe('AuthenticAMD');
    expect(cpu.model).toBe('AMD Ryzen 7 5800X 8-Core Processor');
    expect(hardwareVirtualization(cpu)).toBe('svm');
    expect(hasFlag(cpu, 'svm_lock')).toBe(true);
    expect(hasFlag(cpu, 'npt')).toBe(true);
  });

  it('joins a flags line wrapped across several lines (unindented and indented continuations)', () => {
    const text = fixture('intel-wrapped-flags.txt');
    // The fixture really wraps: lm and vmx sit on continuation lines, not on the "flags :" line.
    const flagsLine = text.split('\n').find((l) => l.startsWith('flags'));
    expect(flagsLine).toBeDefined();
    expect(flagsLine?.split(/\s+/)).not.toContain('lm');
    const cpu = parseCpuinfo(text);
    expect(cpu.logicalCpus).toBe(4);
    expect(cpu.model).toBe('Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz');
    expect(hasFlag(cpu, 'lm')).toBe(true);
    expect(hardwareVirtualization(cpu)).toBe('vmx');
    expect(hasFlag(cpu, 'clflush')).toBe(true); // first, unindented continuation line
    expect(hasFlag(cpu, 'flush_l1d')).toBe(true); // last word of the last continuation line
    expect(cpu.flags).toHaveLength(parseCpuinfo(fixture('intel-xeon-vmx.txt')).flags.length);
    // The next key after the wrapped lines is still parsed as a key, not swallowed into flags.
    expect(hasFlag(cpu, 'spectre_v1')).toBe(false);
  });

  it('reports a CPU without lm', () => {
    const cpu = parseCpuinfo(fixture('pentium-m-no-lm.txt'));
    expect(cpu.logicalCpus).toBe(1);
    expect(hasFlag(cpu, 'lm')).toBe(false);
    expect(hasFlag(cpu, 'sse2')).toBe(true);
  });

  it('treats flags as whole tokens: lahf_lm is not lm, svm_lock is not svm', () => {
    const cpu = parseCpuinfo(fixture('decoys-lahf-lm-svm-lock.txt'));
    expect(hasFlag(cpu, 'lahf_lm')).toBe(true);
    expect(hasFlag(cpu, 'svm_lock')).toBe(true);
    expect(hasFlag(cpu, 'lm')).toBe(false);
    expect(hasFlag(cpu, 'svm')).toBe(false);
    expect(hasFlag(cpu, 'vmx')).toBe(false);
    expect(hardwareVirtualization(cpu)).toBeUndefined();
  });

  it('counts a flag only when every processor has it', () => {
    const text = 'processor : 0\nvendor_id : GenuineIntel\nflags : fpu vmx lm\n\nprocessor : 1\nvendor_id : GenuineIntel\nflags : fpu lm\n';
    const cpu = parseCpuinfo(text);
    expect(cpu.logicalCpus).toBe(2);
    expect(cpu.flags).toEqual(['fpu', 'lm']);
  });

  it('copes with CRLF, missing blank lines between processors and empty input', () => {
    const cpu = parseCpuinfo('processor\t: 0\r\nvendor_id\t: AuthenticAMD\r\nflags\t\t: lm svm\r\nprocessor\t: 1\r\nflags\t\t: lm svm\r\n');
    expect(cpu).toEqual({ vendor: 'AuthenticAMD', model: '', flags: ['lm', 'svm'], logicalCpus: 2 });
    expect(parseCpuinfo('')).toEqual({ vendor: '', model: '', flags: [], logicalCpus: 0 });
  });
});
