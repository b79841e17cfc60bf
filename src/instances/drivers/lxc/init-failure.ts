import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { inotifyInstancesLimit } from '../../../host/inotify.ts';

/** Why a container's init gave up, as it said on the console, and what to do about it. */
export interface InitFailure {
  message: string;
  hint: string;
  /** A host limit (not the container's own problem). */
  hostLimit: boolean;
}

const TAIL_BYTES = 16 * 1024;

/**
 * systemd as a container's PID 1 prints "Failed to allocate manager object: <why>" and exits when it cannot set
 * itself up; the usual why on a host full of containers is the inotify instance limit (shared by all of them).
 */
export function parseInitFailure(consoleTail: string, inotifyLimit: number | undefined): InitFailure | undefined {
  const lines = consoleTail.split(/\r?\n/);
  const fatal = lines.findLastIndex((l) => /Failed to allocate manager object: /.test(l));
  if (fatal < 0) return undefined;
  const why = /Failed to allocate manager object: (.*)$/.exec(lines[fatal]!)![1]!.trim();
  const before = lines.slice(Math.max(0, fatal - 3), fatal).join('\n');
  if (/Too many open files/.test(why) && /inotify/.test(before)) {
    const limit = inotifyLimit === undefined ? '' : ` (${inotifyLimit})`;
    return {
      message: `the container's init (systemd) got no inotify instance: the host's limit fs.inotify.max_user_instances${limit} is used up, all containers count against it`,
      hint: 'raise it, e.g. sysctl -w fs.inotify.max_user_instances=8192 (virtnode raises it to 8192 itself when it may write /proc/sys)',
      hostLimit: true,
    };
  }
  return { message: `the container's init (systemd) exited: ${why}`, hint: 'see its console log', hostLimit: false };
}

/** The end of a console log file ('' when there is none). */
export function consoleTail(path: string): string {
  let fd: number | undefined;
  try {
    const size = statSync(path).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    fd = openSync(path, 'r');
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function initFailureFromConsole(path: string): InitFailure | undefined {
  return parseInitFailure(consoleTail(path), inotifyInstancesLimit());
}
