import { readFileSync, writeFileSync } from 'node:fs';

/**
 * inotify instances are counted per user, and every container's processes count as root's: a container's user
 * namespace charges its owner (root) in the host's namespace too. A Debian container's systemd holds about 10
 * (PID 1 alone 5, more while it boots) and exits at once when it gets none ("Failed to allocate manager object:
 * Too many open files"). The kernel's default, 128, is therefore used up by about 14 containers.
 */
export const MAX_USER_INSTANCES_PATH = '/proc/sys/fs/inotify/max_user_instances';
/** Room for hundreds of containers; an instance is a few hundred bytes of kernel memory until it is used. */
export const INOTIFY_INSTANCES_FLOOR = 8192;

export interface InotifyLimit {
  /** The limit in force after the call. */
  limit: number;
  /** Set when this call raised it. */
  raisedFrom?: number;
  /** Set when it is below the floor and could not be raised (read-only /proc/sys, not root). */
  error?: string;
}

/** Raises fs.inotify.max_user_instances to `floor` if it is lower; never lowers it, never throws. */
export function ensureInotifyInstances(floor = INOTIFY_INSTANCES_FLOOR, path = MAX_USER_INSTANCES_PATH): InotifyLimit {
  let current: number;
  try {
    current = Number(readFileSync(path, 'utf8').trim());
  } catch (e) {
    return { limit: Number.NaN, error: `cannot read ${path}: ${(e as Error).message}` };
  }
  if (!(current < floor)) return { limit: current };
  try {
    writeFileSync(path, `${floor}\n`);
    return { limit: floor, raisedFrom: current };
  } catch (e) {
    return { limit: current, error: `cannot raise ${path} from ${current} to ${floor}: ${(e as Error).message}` };
  }
}

export function inotifyInstancesLimit(path = MAX_USER_INSTANCES_PATH): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}
