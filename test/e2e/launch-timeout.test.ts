import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';

describe('launch readiness timeout', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-timeout-');
  afterAll(cleanup);

  it('says the instance is still provisioning and how to follow it, and leaves it running', async () => {
    expect((await virtnode(home, ['image', 'import', debianImage(), '--name', 'debian-12'])).code).toBe(0);
    // Under TCG cloud-init needs over a minute, so 5 s is too short on every host; under a working KVM it might not be.
    const r = await virtnode(home, ['launch', 'debian-12', '--name', 'slow', '--accel', 'tcg', '--timeout', '5']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/\] booting /);
    expect(r.stderr).toMatch(/^error: slow is still provisioning after \d+ s \(it has not failed\)$/m);
    expect(r.stderr).toContain('hint: follow it with `virtnode logs --follow slow`, then `virtnode shell slow`');
    const info = JSON.parse((await virtnode(home, ['info', 'slow', '--format', 'json'])).stdout) as { state: string };
    expect(info.state).toBe('running');
    expect((await virtnode(home, ['delete', '--force', 'slow'])).code).toBe(0);
  });
});
