/**
 * The source side of a live move in a process of its own, so a test can kill it mid-way as a daemon would die.
 * argv[2]: JSON { qmpPath, offer, ready, maxBandwidth }. The target was prepared by the test (`ready`); `resume`
 * only reports that it was asked for and waits forever. Prints one JSON line per event on stdout.
 */
import { migrateOut } from '../../src/instances/migrate/source.ts';
import type { MigrationOffer, TargetHost, TargetReady } from '../../src/instances/migrate/protocol.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';

const input = JSON.parse(process.argv[2]!) as { qmpPath: string; offer: MigrationOffer; ready: TargetReady; maxBandwidth: number };
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const qmp = await QmpConnection.connect(input.qmpPath);
const target: TargetHost = {
  prepare: () => Promise.resolve(input.ready),
  resume: () => {
    say({ event: 'resume' });
    return new Promise(() => {});
  },
  abort: () => {
    say({ event: 'abort' });
    return Promise.resolve();
  },
};
await migrateOut(qmp, input.offer, target, { dirtyRateSeconds: 0, maxBandwidth: input.maxBandwidth, onProgress: (p) => say({ event: 'progress', ...p }) });
