import { open, readFile, rm } from 'node:fs/promises';
import { VirtnodeError } from '../../lib/errors.ts';
import { isAlive, selfIdentity } from '../../lib/proc.ts';
import type { ProcessIdentity } from '../../lib/proc.ts';

/**
 * Takes the lock of one partial download, so two pulls of the same URL never write the same file. A lock
 * whose owner is gone (pid and start time no longer match a live process) is taken over.
 */
export async function lockPartial(partial: string, url: string): Promise<() => Promise<void>> {
  const lock = `${partial}.lock`;
  const self = selfIdentity();
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify(self));
      } finally {
        await handle.close();
      }
      return () => rm(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner: ProcessIdentity | undefined;
    try {
      owner = JSON.parse(await readFile(lock, 'utf8')) as ProcessIdentity;
    } catch {
      owner = undefined; // being written right now, or torn by a crash: look again
    }
    if (owner !== undefined && isAlive(owner)) {
      throw new VirtnodeError('BUSY', `another pull of ${url} is under way (pid ${owner.pid})`, { hint: 'wait for it to finish, then pull again' });
    }
    if (owner !== undefined) await rm(lock, { force: true });
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new VirtnodeError('BUSY', `cannot take the lock of the download of ${url} (${lock})`, { hint: 'try again' });
}
