import { defineConfig } from 'vitest/config';

/** The files that boot the Debian image under TCG: a minute or more of CPU per boot. */
const DEBIAN_GUEST_FILES = ['test/e2e/**/*.test.ts', 'test/integration/cluster-move-bridged-debian.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/helpers/global-setup.ts'],
    // Two cores, and the suite is CPU-bound (QEMU under TCG, a Node start per CLI call), but not evenly. The
    // Debian guests keep both cores busy with two files at a time: with three, the machine was 96 % busy and each
    // file took 1.46x as long, for 3 % more throughput. The rest (tiny guests, daemons, etcd, containers) waits
    // on guests and timers as much as it computes (61 to 80 % busy with two files), so it runs three at a time,
    // after the Debian files.
    projects: [
      { extends: true, test: { name: 'debian-guests', include: DEBIAN_GUEST_FILES, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'rest',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/.git/**', ...DEBIAN_GUEST_FILES],
          maxWorkers: 3,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
