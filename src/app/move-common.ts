/**
 * What the live and the offline move share: their input and outcome, and the target host's checks before it makes
 * anything (the name free here, the bases of linked clones found by digest, the networks of its NICs).
 */
import { existsSync } from 'node:fs';
import type { Static } from 'typebox';
import type { MoveBody } from '../api/contracts/instances.ts';
import type { InstanceView } from '../api/schemas.ts';
import type { ClusterService } from '../cluster/service.ts';
import type { SwitchoverTimes } from '../instances/migrate/protocol.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { listLinks } from '../network/links.ts';
import { checkNicsArrive, type MovingNic } from '../network/movable.ts';
import type { MigrationOffer } from '../instances/migrate/protocol.ts';
import type { Instance } from '../instances/model.ts';
import { bootFileHere } from '../images/boot/extract.ts';
import type { AppCore } from './context.ts';

/** A base image a disk sits on, which the target must have (by digest) before anything starts. */
export interface NeededBase {
  disk: string;
  image: string;
  sha256: string;
}

export type MoveInput = { name: string } & Static<typeof MoveBody>;

export interface MoveOutcome {
  instance: InstanceView;
  from: string;
  to: string;
  totalMs: number;
  migrationMs: number;
  downtimeMs: number | null;
  bytesSent: number;
  diskBytes: number;
  /** Moved stopped (its disks copied), not live. */
  offline: boolean;
  /** A live move that switched to post-copy. */
  postcopy: boolean;
  /** A live move: where the downtime went (MigrationResult's `switchover`). */
  switchover?: SwitchoverTimes;
}

/** Where a base image is on this host: an image or a template with that digest, if its file is there. */
export function localBase(app: AppCore, sha256: string): string | undefined {
  const image = app.images.list().find((i) => i.sha256 === sha256 && existsSync(i.path));
  if (image !== undefined) return image.path;
  return app.core.repos.templates.list().find((t) => t.sha256 === sha256 && existsSync(t.diskPath))?.diskPath;
}

/**
 * What the target refuses before anything is made: fenced, the name taken here, a base it does not have, a NIC
 * whose network it lacks or has otherwise (`nics`: the instance's NICs on managed networks, as the source has them).
 */
export async function checkIncoming(app: AppCore, c: ClusterService, name: string, bases: NeededBase[], nics: readonly MovingNic[] = []): Promise<void> {
  c.refuseWhileFenced('move');
  validateName('name', name);
  if (app.core.repos.instances.get(name) !== undefined || existsSync(app.paths.instanceDir(name))) {
    throw new VirtnodeError('CONFLICT', `host: ${c.host} has an instance (or an unfinished move) named ${name} already`, { field: 'host' });
  }
  const bridges = nics.some((n) => n.mode === 'bridge') ? new Set((await listLinks()).filter((l) => l.kind === 'bridge').map((l) => l.ifname)) : new Set<string>();
  checkNicsArrive(nics, (n) => app.core.networks.repo.get(n), c.host ?? 'this host', (b) => bridges.has(b));
  for (const b of bases) {
    if (localBase(app, b.sha256) === undefined) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `disks: ${b.disk} is a linked clone of image ${b.image} (sha256 ${b.sha256.slice(0, 12)}...), which host ${c.host} does not have`, {
        field: 'disks',
        hint: `pull or import the same image on ${c.host} first`,
      });
    }
  }
}

/** A moving instance's record with this host's paths of its image's boot files (kernel, initrd). */
export function withBootFilesHere(app: AppCore, instance: Instance): Instance {
  const boot = instance.spec.boot;
  if (boot === undefined) return instance;
  const here = (p: string) => bootFileHere(app.paths.images, p);
  return { ...instance, spec: { ...instance.spec, boot: { ...boot, kernel: here(boot.kernel), ...(boot.initrd === undefined ? {} : { initrd: here(boot.initrd) }) } } };
}

/** An offer whose QEMU boots an image's kernel: this host's copy of it (the source named its own). */
export function offerWithBootFilesHere(app: AppCore, offer: MigrationOffer): MigrationOffer {
  const kernel = offer.vm.kernel;
  if (kernel === undefined) return offer;
  const here = (p: string) => bootFileHere(app.paths.images, p);
  return { ...offer, vm: { ...offer.vm, kernel: { ...kernel, path: here(kernel.path), ...(kernel.initrd === undefined ? {} : { initrd: here(kernel.initrd) }) } } };
}
