import { execFileSync } from 'node:child_process';

/**
 * Guests booted by tests must not reach anything outside the machine. scripts/test.sh runs the suite inside a
 * network namespace of its own (only loopback); refuse to run guest tests anywhere else.
 */
export default function setup(): void {
  const links = JSON.parse(execFileSync('ip', ['-json', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>;
  const outside = links.map((l) => l.ifname).filter((n) => n !== 'lo');
  if (outside.length > 0 && process.env['VIRTNODE_TEST_ALLOW_HOST_NET'] !== '1') {
    throw new Error(
      `tests must run in a private network namespace, but interfaces ${outside.join(', ')} are visible; ` +
        'run them with ./scripts/test.sh (it wraps vitest in `unshare --net`)',
    );
  }
}
