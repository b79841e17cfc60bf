import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimePaths } from '../qemu/spec.ts';
import { SSH_MUX_SOCKET } from './ssh.ts';

/** The fixed layout of an instance's directory. */
export function runtimePaths(dir: string): RuntimePaths & { qemuLog: string } {
  return {
    qmp: join(dir, 'qmp.sock'),
    qmpQuery: join(dir, 'qmp-query.sock'),
    serial: join(dir, 'serial.sock'),
    serialLog: join(dir, 'console.log'),
    guestAgent: join(dir, 'qga.sock'),
    vnc: join(dir, 'vnc.sock'),
    pidfile: join(dir, 'qemu.pid'),
    qemuLog: join(dir, 'qemu.log'),
  };
}

/** Removes the sockets and pidfile a QEMU leaves behind, so a stale socket is never mistaken for a live one. */
export function removeRuntimeFiles(dir: string): void {
  const p = runtimePaths(dir);
  // The shared SSH connection's control socket (instances/ssh.ts): a later QEMU must not be reached through a
  // master connected to this one.
  for (const path of [p.qmp, p.qmpQuery, p.serial, p.guestAgent, p.vnc, p.pidfile, join(dir, SSH_MUX_SOCKET)]) rmSync(path, { force: true });
}
