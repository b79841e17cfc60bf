/**
 * Pure parser for Linux /proc/cpuinfo text (x86). No I/O here: callers read the file (or a captured copy) and
 * pass its text in.
 */

export interface CpuInfo {
  /** `vendor_id` of the first processor, e.g. `GenuineIntel`, `AuthenticAMD`; '' when absent. */
  vendor: string;
  /** `model name` of the first processor; '' when absent. */
  model: string;
  /** CPU flags every listed processor has, as whole tokens, sorted. */
  flags: string[];
  /** Number of logical CPUs (`processor` entries). */
  logicalCpus: number;
}

/** `key : value` as the kernel prints it: a key of words (letters, digits, spaces, `_`, `-`), then a colon. */
const KEY_VALUE = /^([A-Za-z][A-Za-z0-9 _()-]*?)\s*:(?:\s(.*))?$/;

interface Block {
  fields: Map<string, string>;
}

function parseBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  let current: Block | undefined;
  let lastKey: string | undefined;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/\s+$/, '');
    if (line.trim() === '') {
      // A blank line ends a processor block.
      current = undefined;
      lastKey = undefined;
      continue;
    }
    const m = KEY_VALUE.exec(line);
    if (m !== null) {
      const key = (m[1] ?? '').trim().toLowerCase();
      const value = (m[2] ?? '').trim();
      if (current === undefined || (key === 'processor' && current.fields.has('processor'))) {
        current = { fields: new Map() };
        blocks.push(current);
      }
      current.fields.set(key, value);
      lastKey = key;
    } else if (current !== undefined && lastKey !== undefined) {
      // A continuation line: captured output wrapped a long value (the flags line) onto the next line(s).
      const previous = current.fields.get(lastKey) ?? '';
      current.fields.set(lastKey, `${previous} ${line.trim()}`.trim());
    }
  }
  return blocks;
}

function flagSet(value: string | undefined): Set<string> {
  return new Set((value ?? '').split(/\s+/).filter((t) => t !== ''));
}

export function parseCpuinfo(text: string): CpuInfo {
  const blocks = parseBlocks(text);
  const processors = blocks.filter((b) => b.fields.has('processor'));
  const described = processors.length > 0 ? processors : blocks;
  const first = described[0];

  let common: Set<string> | undefined;
  for (const block of described) {
    const value = block.fields.get('flags');
    if (value === undefined) continue;
    const mine = flagSet(value);
    common = common === undefined ? mine : new Set([...common].filter((f) => mine.has(f)));
  }

  return {
    vendor: first?.fields.get('vendor_id') ?? '',
    model: first?.fields.get('model name') ?? '',
    flags: [...(common ?? [])].sort(),
    logicalCpus: processors.length > 0 ? processors.length : blocks.length > 0 ? 1 : 0,
  };
}

/** Whole-token flag test: `lahf_lm` does not count as `lm`, `svm_lock` not as `svm`. */
export function hasFlag(cpu: Pick<CpuInfo, 'flags'>, flag: string): boolean {
  return cpu.flags.includes(flag);
}

export type HardwareVirtualization = 'vmx' | 'svm';

export function hardwareVirtualization(cpu: Pick<CpuInfo, 'flags'>): HardwareVirtualization | undefined {
  if (hasFlag(cpu, 'vmx')) return 'vmx';
  if (hasFlag(cpu, 'svm')) return 'svm';
  return undefined;
}
