import { describe, expect, it } from 'vitest';
import { limitLines, renderLxcConfig, type LxcConfigInput } from './config.ts';
import { parseMonitorCmdline } from './tools.ts';

const base: LxcConfigInput = {
  hostname: 'web1',
  lowerDir: '/state/images/rootfs/abc-u100000',
  upperDir: '/state/instances/web1/upper',
  idmapBase: 100000,
  nics: [{ index: 0, link: 'vnp0123456789', mac: '52:54:00:aa:bb:cc' }],
  cpus: 2,
  memoryMiB: 256,
  maxProcesses: 4096,
  cgroup: 1,
  consoleLog: '/state/instances/web1/console.log',
  lxcLog: '/state/instances/web1/lxc.log',
};

describe('LXC configuration', () => {
  it('maps root to the unprivileged range and stacks the overlay on the shared tree', () => {
    const text = renderLxcConfig(base);
    expect(text).toContain('lxc.include = /usr/share/lxc/config/userns.conf\nlxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n');
    expect(text).toContain('lxc.rootfs.path = overlay:/state/images/rootfs/abc-u100000:/state/instances/web1/upper\n');
    expect(text).toContain('lxc.uts.name = web1\n');
    expect(text).toContain('lxc.net.0.type = phys\nlxc.net.0.link = vnp0123456789\nlxc.net.0.name = eth0\nlxc.net.0.hwaddr = 52:54:00:aa:bb:cc\nlxc.net.0.flags = up\n');
  });

  it('has no idmap nor userns include for a privileged container, and an empty network without NICs', () => {
    const text = renderLxcConfig({ ...base, idmapBase: undefined, nics: [] });
    expect(text).not.toContain('idmap');
    expect(text).not.toContain('userns.conf');
    expect(text).toContain('lxc.net.0.type = empty\n');
  });

  it('writes limits for the cgroup version in use only', () => {
    expect(limitLines({ cpus: 2, memoryMiB: 256, maxProcesses: 100, cgroup: 1 })).toEqual([
      'lxc.cgroup.memory.limit_in_bytes = 268435456',
      'lxc.cgroup.cpu.cfs_period_us = 100000',
      'lxc.cgroup.cpu.cfs_quota_us = 200000',
      'lxc.cgroup.pids.max = 100',
    ]);
    expect(limitLines({ cpus: 1, memoryMiB: 512, maxProcesses: 50, cgroup: 2 })).toEqual([
      'lxc.cgroup2.memory.max = 536870912',
      'lxc.cgroup2.memory.swap.max = 0',
      'lxc.cgroup2.cpu.max = 100000 100000',
      'lxc.cgroup2.pids.max = 50',
    ]);
    expect(renderLxcConfig({ ...base, cgroup: 2 })).not.toMatch(/lxc\.cgroup\./);
  });
});

describe('LXC monitor processes', () => {
  it('names the lxcpath and the container', () => {
    expect(parseMonitorCmdline('[lxc monitor] /var/lib/virtnode/instances web1\0')).toEqual({ lxcpath: '/var/lib/virtnode/instances', name: 'web1' });
    expect(parseMonitorCmdline('[lxc monitor] /a dir/with space/instances c\0')).toEqual({ lxcpath: '/a dir/with space/instances', name: 'c' });
    expect(parseMonitorCmdline('qemu-system-x86_64\0-name\0x')).toBeUndefined();
  });
});
