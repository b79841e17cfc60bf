import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { run } from '../exec/run.ts';

export interface DaemonCertificate {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as a browser shows it, to check before trusting the certificate. */
  fingerprint256: string;
  /** Made now (false: the one made before, reused so browsers that trusted it keep doing so). */
  generated: boolean;
}

/** The names a self-signed certificate covers: this host, loopback, and the address the daemon listens on. */
function subjectAltNames(listenHost: string): string {
  const names = new Set([`DNS:${hostname()}`, 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  if (isIP(listenHost) !== 0 && listenHost !== '0.0.0.0' && listenHost !== '::') names.add(`IP:${listenHost}`);
  return [...names].join(',');
}

/**
 * The daemon's own TLS certificate for `--listen` without `--tls-cert`: made once with openssl (EC P-256, two
 * years) in `DIR/daemon.crt` and `daemon.key` (0600, in a 0700 directory), then reused.
 */
export async function selfSignedCertificate(dir: string, listenHost: string): Promise<DaemonCertificate> {
  const certPath = join(dir, 'daemon.crt');
  const keyPath = join(dir, 'daemon.key');
  let generated = false;
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const partial = { cert: `${certPath}.partial`, key: `${keyPath}.partial` };
    try {
      await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', partial.key, '-out', partial.cert,
        '-days', '730', '-subj', `/CN=${hostname()}`, '-addext', `subjectAltName=${subjectAltNames(listenHost)}`]);
      chmodSync(partial.key, 0o600);
      renameSync(partial.key, keyPath);
      renameSync(partial.cert, certPath);
    } finally {
      rmSync(partial.key, { force: true });
      rmSync(partial.cert, { force: true });
    }
    generated = true;
  }
  const cert = readFileSync(certPath, 'utf8');
  return { cert, key: readFileSync(keyPath, 'utf8'), fingerprint256: new X509Certificate(cert).fingerprint256, generated };
}
