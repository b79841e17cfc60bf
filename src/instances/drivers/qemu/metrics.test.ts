import { describe, expect, it } from 'vitest';
import { guestRamResidentBytes } from './metrics.ts';

const SMAPS = `55ec90501000-55ec90908000 r--p 00000000 fe:00 2171002                    /usr/bin/qemu-system-x86_64
Size:               4124 kB
Rss:                4124 kB
55ecb6321000-55ecb7b27000 rw-p 00000000 00:00 0                          [heap]
Size:              24600 kB
Rss:                5588 kB
7f5d97e00000-7f5d9fe00000 rw-p 00000000 00:00 0 
Size:             131072 kB
KernelPageSize:        4 kB
Rss:               73728 kB
7f5da7c00000-7f5de7bff000 rwxp 00000000 00:00 0 
Size:            1048572 kB
Rss:                8192 kB
7f5e00000000-7f5e08000000 rwxp 00000000 00:00 0 
Size:             131072 kB
Rss:                1024 kB
`;

describe('guestRamResidentBytes', () => {
  it("counts only writable, non-executable mappings of exactly the guest RAM's size", () => {
    expect(guestRamResidentBytes(SMAPS, 131072)).toBe(73728 * 1024);
  });

  it("counts only the changed (anonymous) pages of a warm launch's private mapping of the template's RAM file", () => {
    const warm = `7f5d97e00000-7f5d9fe00000 rw-p 00000000 fe:00 4242                       /var/lib/virtnode/templates/t/warm/memory.ram
Size:             131072 kB
Rss:               90000 kB
Anonymous:         12000 kB
`;
    expect(guestRamResidentBytes(warm, 131072)).toBe(12000 * 1024);
  });

  it('counts nothing when no mapping has that size', () => {
    expect(guestRamResidentBytes(SMAPS, 65536)).toBe(0);
  });
});
