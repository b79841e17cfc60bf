import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError } from './errors.ts';

/**
 * A mutex shared by every process in this network namespace, whatever its state directory: an abstract UNIX
 * socket (Linux), which belongs to the namespace and is freed when its holder exits, even by SIGKILL. For what the
 * namespace itself holds, such as routes: two state directories choosing a subnet at once must not both take it.
 */
export async function acquireNetnsLock(name: string, purpose: string, waitMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(false) : reject(e)));
      server.listen(`\0virtnode-${name}`, () => resolve(true));
    });
    if (bound) {
      server.unref();
      return () => new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (Date.now() > deadline) {
      throw new VirtnodeError('BUSY', `${purpose}: another virtnode on this host held the ${name} lock for ${Math.round(waitMs / 1000)} s`, {
        hint: 'try again when the other network operation has finished',
      });
    }
    await sleep(50 + Math.floor(Math.random() * 100));
  }
}
