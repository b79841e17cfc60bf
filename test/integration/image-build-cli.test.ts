import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';

describe('virtnode image build', () => {
  const { home, cleanup } = tempHome();
  afterAll(cleanup);

  it('reuses the build cached by recipe (made by setup) and stores it under the recipe name', async () => {
    debianImage(); // fails with the command to run if setup has not built it
    const started = Date.now();
    const r = await virtnode(home, ['image', 'build', 'debian-12']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Reusing the cached build');
    expect(r.stdout).toMatch(/^Stored image debian-12 \(qcow2, 4 GiB virtual/);
    expect(Date.now() - started).toBeLessThan(60_000);
    const info = JSON.parse((await virtnode(home, ['image', 'info', 'debian-12', '--format', 'json'])).stdout) as { format: string };
    expect(info.format).toBe('qcow2');
  });

  it.each([
    [['image', 'build', 'debian-13'], /<recipe>: "debian-13" is not a recipe virtnode knows\nhint: use debian-12/],
    [['image', 'build', 'debian-12', '--packages', 'vim;rm -rf /'], /--packages: "vim;rm -rf \/" is not a Debian package name/],
    [['image', 'build', 'debian-12', '--size', 'huge'], /--size: "huge" is not a size/],
  ])('refuses %j', async (args, message) => {
    const r = await virtnode(home, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
