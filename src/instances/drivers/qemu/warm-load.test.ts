import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeQmpServer } from '../../../../test/helpers/fake-qmp-server.ts';
import { QmpConnection } from '../../../qmp/connection.ts';
import { loadState } from './warm.ts';

/**
 * A QEMU that closes the incoming connection before this side has sent the whole file: real QEMU does it when it
 * has read the state's end marker while the sender's stream is still finishing, which no real peer produces on
 * demand. The scripted one reads 64 KiB of an 8 MiB file, closes, and then reports what its load came to.
 */
describe('loading a warm state when QEMU closes the stream early', () => {
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function scenario(after: 'paused' | 'exited'): Promise<{ load: Promise<void> }> {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-warm-load-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const statePath = join(dir, 'state');
    writeFileSync(statePath, randomBytes(8 * 1024 * 1024));
    let incoming: Server | undefined;
    let closedEarly = false;
    const fake = await FakeQmpServer.start({
      handler: (command, client) => {
        if (command.execute === 'migrate-incoming') {
          const path = String(command.arguments?.['uri']).replace(/^unix:/, '');
          incoming = createServer((socket) => {
            let read = 0;
            socket.on('data', (chunk: Buffer) => {
              read += chunk.length;
              if (read >= 64 * 1024 && !closedEarly) {
                closedEarly = true;
                socket.destroy();
              }
            });
            socket.on('error', () => {});
          });
          incoming.listen(path, () => client.reply(command));
          return;
        }
        if (command.execute === 'query-status') {
          if (!closedEarly) return client.reply(command, { status: 'inmigrate', running: false });
          if (after === 'exited') return client.drop(); // a failed load ends QEMU
          return client.reply(command, { status: 'paused', running: false });
        }
        client.reply(command);
      },
    });
    cleanups.push(async () => {
      incoming?.close();
      await fake.stop();
    });
    const qmp = await QmpConnection.connect(fake.path, { timeoutMs: 5_000 });
    cleanups.push(() => qmp.close());
    return { load: loadState(qmp, statePath, join(dir, 'incoming.sock'), 20_000) };
  }

  it('QEMU loaded and paused: the launch goes on, whatever the stream says', async () => {
    await expect((await scenario('paused')).load).resolves.toBeUndefined();
  });

  it('QEMU gone after the stream broke: the load fails', async () => {
    await expect((await scenario('exited')).load).rejects.toThrow();
  });
});
