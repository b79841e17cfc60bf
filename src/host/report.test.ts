import { describe, expect, it } from 'vitest';
import { countByStatus, formatHostReport } from './report.ts';

describe('formatHostReport', () => {
  it('prints one line per check, hints under WARN and FAIL only, then the accelerator', () => {
    const text = formatHostReport({
      checks: [
        { id: 'a', title: 'QEMU', status: 'PASS', detail: '7.2.22 (/usr/bin/qemu-system-x86_64)' },
        { id: 'b', title: 'vhost-net device', status: 'WARN', detail: '/dev/vhost-net is absent', hint: 'modprobe vhost_net' },
        { id: 'c', title: 'qemu-img', status: 'FAIL', detail: 'qemu-img is not installed', hint: 'apt-get install qemu-utils' },
      ],
      accelerator: { chosen: 'tcg', reason: '/dev/kvm is absent; using TCG (software emulation, slower)' },
    });
    expect(text).toBe(
      [
        'PASS  QEMU: 7.2.22 (/usr/bin/qemu-system-x86_64)',
        'WARN  vhost-net device: /dev/vhost-net is absent',
        '      hint: modprobe vhost_net',
        'FAIL  qemu-img: qemu-img is not installed',
        '      hint: apt-get install qemu-utils',
        'Accelerator: tcg (/dev/kvm is absent; using TCG (software emulation, slower))',
        '',
      ].join('\n'),
    );
  });

  it('counts statuses', () => {
    expect(
      countByStatus({
        checks: [
          { id: 'a', title: 'A', status: 'PASS', detail: '' },
          { id: 'b', title: 'B', status: 'WARN', detail: '' },
          { id: 'c', title: 'C', status: 'WARN', detail: '' },
        ],
      }),
    ).toEqual({ PASS: 1, WARN: 2, FAIL: 0 });
  });
});
