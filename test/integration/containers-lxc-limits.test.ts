/**
 * Host limits many containers run into. fs.inotify.max_user_instances is shared by every container (all are
 * charged to root) and its default, 128, ends at about 14 Debian containers, whose systemd then exits at start:
 * a container start raises it to virtnode's floor and says so in the instance's reason.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INOTIFY_INSTANCES_FLOOR, MAX_USER_INSTANCES_PATH } from '../../src/host/inotify.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { type ContainerFootprint, containerFootprint } from '../helpers/container-footprint.ts';
import { debianImage } from '../helpers/debian-image.ts';

const NAME = 'ct-lim';

describe('container starts and host limits', { timeout: 600_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxc-limits-');
  const original = readFileSync(MAX_USER_INSTANCES_PATH, 'utf8').trim();
  let before: ContainerFootprint;

  beforeAll(async () => {
    before = containerFootprint(home, [NAME]);
    const r = await virtnode(home, ['image', 'import', debianImage(), '--name', 'debian-12'], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
  }, 400_000);

  afterAll(async () => {
    writeFileSync(MAX_USER_INSTANCES_PATH, `${original}\n`);
    await virtnode(home, ['delete', '--force', NAME]).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    cleanup();
  });

  it('raises fs.inotify.max_user_instances from the kernel default at a container start, and says so', async () => {
    writeFileSync(MAX_USER_INSTANCES_PATH, '128\n');
    const launched = await virtnode(home, ['launch', 'debian-12', '--container', '--name', NAME, '--memory', '256M', '--no-wait'], { timeoutMs: 300_000 });
    expect(launched.code, launched.stderr).toBe(0);
    expect(Number(readFileSync(MAX_USER_INSTANCES_PATH, 'utf8'))).toBe(INOTIFY_INSTANCES_FLOOR);
    const info = JSON.parse((await virtnode(home, ['info', NAME, '--format', 'json'])).stdout) as { state: string; reason: string };
    expect(info.state).toBe('running');
    // The limit is the host's: a container start in another test file at the same moment may be the one that
    // raised it, and then this start's reason says nothing of it (src/host/inotify.test.ts covers the reporting).
    expect(info.reason).toMatch(new RegExp(`^started with lxc \\(unprivileged, root is host uid \\d+(; raised fs\\.inotify\\.max_user_instances from 128 to ${INOTIFY_INSTANCES_FLOOR})?\\)$`));
    // A limit already above the floor is left alone.
    const restarted = await virtnode(home, ['restart', NAME, '--force'], { timeoutMs: 180_000 });
    expect(restarted.code, restarted.stderr).toBe(0);
    const again = JSON.parse((await virtnode(home, ['info', NAME, '--format', 'json'])).stdout) as { reason: string };
    expect(again.reason).not.toContain('raised');
    const deleted = await virtnode(home, ['delete', '--force', NAME], { timeoutMs: 120_000 });
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await virtnode(home, ['network', 'rm', 'default'])).code).toBe(0);
    expect(existsSync(join(home, 'instances', NAME))).toBe(false);
    expect(containerFootprint(home, [NAME])).toEqual(before);
  });
});
