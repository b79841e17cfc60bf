import type { CgroupVersion } from '../../../host/cgroups.ts';

/** What a system container's LXC configuration is made of; renderLxcConfig turns it into the file, nothing else. */
export interface LxcConfigInput {
  hostname: string;
  /** Read-only lower tree (the image's unpacked root filesystem) and this container's upper directory. */
  lowerDir: string;
  upperDir: string;
  /** First host uid/gid of the container's 65536 ids; undefined: privileged (container root is host root). */
  idmapBase: number | undefined;
  /** One veth peer per managed NIC, moved into the container (made beforehand by the network service). */
  nics: Array<{ index: number; link: string; mac: string }>;
  cpus: number;
  memoryMiB: number;
  maxProcesses: number;
  cgroup: CgroupVersion;
  consoleLog: string;
  lxcLog: string;
}

const LXC_CONFIG_DIR = '/usr/share/lxc/config';
const CPU_PERIOD_US = 100_000;
export const ID_COUNT = 65536;

/** Limits as LXC's cgroup keys: `lxc.cgroup.*` (v1 controllers) or `lxc.cgroup2.*`; LXC ignores the other kind. */
export function limitLines(input: Pick<LxcConfigInput, 'cpus' | 'memoryMiB' | 'maxProcesses' | 'cgroup'>): string[] {
  const bytes = input.memoryMiB * 1024 * 1024;
  const quota = input.cpus * CPU_PERIOD_US;
  if (input.cgroup === 1) {
    return [
      `lxc.cgroup.memory.limit_in_bytes = ${bytes}`,
      `lxc.cgroup.cpu.cfs_period_us = ${CPU_PERIOD_US}`,
      `lxc.cgroup.cpu.cfs_quota_us = ${quota}`,
      `lxc.cgroup.pids.max = ${input.maxProcesses}`,
    ];
  }
  return [`lxc.cgroup2.memory.max = ${bytes}`, `lxc.cgroup2.memory.swap.max = 0`, `lxc.cgroup2.cpu.max = ${quota} ${CPU_PERIOD_US}`, `lxc.cgroup2.pids.max = ${input.maxProcesses}`];
}

export function renderLxcConfig(input: LxcConfigInput): string {
  const lines = [
    '# Written by virtnode at each start; changes here are overwritten.',
    `lxc.include = ${LXC_CONFIG_DIR}/common.conf`,
    ...(input.idmapBase === undefined
      ? []
      : [`lxc.include = ${LXC_CONFIG_DIR}/userns.conf`, `lxc.idmap = u 0 ${input.idmapBase} ${ID_COUNT}`, `lxc.idmap = g 0 ${input.idmapBase} ${ID_COUNT}`]),
    'lxc.arch = linux64',
    `lxc.uts.name = ${input.hostname}`,
    // LXC mounts the overlay inside the container's own mount namespace: nothing is left in the host's mount table.
    `lxc.rootfs.path = overlay:${input.lowerDir}:${input.upperDir}`,
    // systemd halts on SIGRTMIN+3 (LXC's default SIGPWR only reaches sigpwr.target).
    'lxc.signal.halt = SIGRTMIN+3',
    'lxc.signal.reboot = SIGTERM',
    `lxc.console.logfile = ${input.consoleLog}`,
    `lxc.log.file = ${input.lxcLog}`,
    'lxc.log.level = WARN',
  ];
  if (input.nics.length === 0) lines.push('lxc.net.0.type = empty');
  for (const [n, nic] of input.nics.entries()) {
    lines.push(`lxc.net.${n}.type = phys`, `lxc.net.${n}.link = ${nic.link}`, `lxc.net.${n}.name = eth${nic.index}`, `lxc.net.${n}.hwaddr = ${nic.mac}`, `lxc.net.${n}.flags = up`);
  }
  lines.push(...limitLines(input));
  return `${lines.join('\n')}\n`;
}
