import { VirtnodeError } from '../../lib/errors.ts';
import { acquireFileLock } from '../../lib/file-lock.ts';

/**
 * Takes the lock of one partial download, so two pulls of the same URL never write the same file. A lock
 * whose owner is gone (pid and start time no longer match a live process) is taken over.
 */
export function lockPartial(partial: string, url: string, waitMs = 0): Promise<() => Promise<void>> {
  return acquireFileLock(`${partial}.lock`, {
    waitMs,
    busy: (owner) => new VirtnodeError('BUSY', `another pull of ${url} is under way${owner === undefined ? '' : ` (pid ${owner.pid})`}`, { hint: 'wait for it to finish, then pull again' }),
  });
}
