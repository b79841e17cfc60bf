import { describe, expect, it } from 'vitest';
import { DEBUG_EXIT_IOBASE, PROBE_EXIT_STATUS, PROBE_EXIT_VALUE, probeBootSector } from './boot-sector.ts';

describe('probeBootSector', () => {
  it('is one 512-byte sector with the 0x55 0xaa signature', () => {
    const sector = probeBootSector();
    expect(sector.length).toBe(512);
    expect(sector[510]).toBe(0x55);
    expect(sector[511]).toBe(0xaa);
  });

  it('ends its code with out 0xf4, al after adding the value that makes AL 0x2a', () => {
    const sector = probeBootSector();
    const out = sector.indexOf(Buffer.from([0xe6, DEBUG_EXIT_IOBASE]));
    expect(out).toBeGreaterThan(0);
    // add al, imm8 right before the out: 16 * 0xffff leaves AL = 0xf0, and 0xf0 + imm wraps to 0x2a.
    expect(sector[out - 2]).toBe(0x04);
    expect((0xf0 + (sector[out - 1] ?? 0)) & 0xff).toBe(PROBE_EXIT_VALUE);
    // Everything between the code and the signature is zero.
    expect(sector.subarray(out + 6, 510).every((b) => b === 0)).toBe(true);
  });

  it('expects QEMU exit status (value << 1) | 1', () => {
    expect(PROBE_EXIT_STATUS).toBe(85);
  });
});
