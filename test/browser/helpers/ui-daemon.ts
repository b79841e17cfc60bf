import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { freeLoopbackPort } from '../../../src/lib/ports.ts';
import { virtnode } from '../../helpers/cli.ts';
import { type RunningDaemon, startDaemon } from '../../helpers/daemon.ts';
import { testGuest } from '../../helpers/test-guest.ts';

export interface UiDaemon {
  /** https://127.0.0.1:PORT (a self-signed certificate). */
  url: string;
  token: string;
  daemon: RunningDaemon;
  stop: () => Promise<void>;
}

/**
 * Runs `virtnode daemon` as a real process serving the web UI on loopback TCP with TLS (a self-signed
 * certificate made here) and a token made with `virtnode token create`, as a user would set it up.
 */
export async function startUiDaemon(home: string, options: { allowPaths?: string[]; allowPrivatePulls?: boolean } = {}): Promise<UiDaemon> {
  const cert = join(home, 'tls.crt');
  const key = join(home, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const created = await virtnode(home, ['token', 'create', 'browser']);
  if (created.code !== 0) throw new Error(`virtnode token create failed: ${created.stderr}`);
  const port = await freeLoopbackPort();
  // The launch form names the test guest's kernel and initrd: clients over TCP may name files there only.
  const guestDir = dirname(testGuest().kernel);
  const daemon = await startDaemon(home, ['--listen', `127.0.0.1:${port}`, '--tls-cert', cert, '--tls-key', key, '--log-level', 'warn', '--allow-path', guestDir, ...(options.allowPaths ?? []).flatMap((p) => ['--allow-path', p]), ...(options.allowPrivatePulls === true ? ['--allow-private-pulls'] : [])]);
  return {
    url: `https://127.0.0.1:${port}`,
    token: created.stdout.trim(),
    daemon,
    stop: async () => {
      await daemon.stop();
    },
  };
}
