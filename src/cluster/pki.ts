/**
 * The cluster's certificate authority and the hosts' certificates, made with the openssl program (EC P-256).
 * Each host's certificate serves both ends of TLS (etcd server and peer, its cluster API, and as a client of
 * the others). Keys are 0600 in 0700 directories. A host's key never leaves it: a joining host sends a CSR, and
 * the issuer signs only the names it decided itself (the CSR's own extensions are ignored).
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { VirtnodeError } from '../lib/errors.ts';

export interface HostTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export function tlsFilesIn(dir: string): HostTlsFiles {
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'host.crt'), key: join(dir, 'host.key') };
}

export const caKeyPath = (dir: string) => join(dir, 'ca.key');

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** SHA-256 fingerprint of a PEM certificate, as `AA:BB:...`. */
export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Makes the cluster CA in `dir` (ca.crt, ca.key 0600), ten years. Refuses to overwrite one. */
export async function createCa(dir: string, clusterId: string): Promise<{ cert: string; fingerprint: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const certPath = join(dir, 'ca.crt');
  if (existsSync(certPath)) throw new VirtnodeError('CONFLICT', `a cluster CA exists already in ${dir}`);
  const partialKey = `${caKeyPath(dir)}.partial`;
  const partialCert = `${certPath}.partial`;
  try {
    await run(['openssl', 'req', '-x509', ...EC, '-keyout', partialKey, '-out', partialCert, '-days', '3650', '-subj', `/O=virtnode/CN=virtnode cluster ${clusterId} CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    chmodSync(partialKey, 0o600);
    renameSync(partialKey, caKeyPath(dir));
    renameSync(partialCert, certPath);
  } finally {
    rmSync(partialKey, { force: true });
    rmSync(partialCert, { force: true });
  }
  const cert = readFileSync(certPath, 'utf8');
  return { cert, fingerprint: fingerprint(cert) };
}

/** A new key (0600) and a CSR for it; the key stays in `dir`. */
export async function createKeyAndCsr(dir: string, hostName: string): Promise<string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const { key } = tlsFilesIn(dir);
  const csrPath = join(dir, 'host.csr');
  await run(['openssl', 'req', '-new', ...EC, '-keyout', `${key}.partial`, '-out', csrPath, '-subj', `/O=virtnode/CN=${hostName}`]);
  chmodSync(`${key}.partial`, 0o600);
  renameSync(`${key}.partial`, key);
  const csr = readFileSync(csrPath, 'utf8');
  rmSync(csrPath, { force: true });
  return csr;
}

/** The names a host's certificate covers: its name, its address, and loopback. */
export function hostAltNames(hostName: string, address: string): string {
  const names = [`DNS:${hostName}`, 'DNS:localhost', 'IP:127.0.0.1'];
  if (isIP(address) !== 0) names.push(`IP:${address}`);
  else names.push(`DNS:${address}`);
  return [...new Set(names)].join(',');
}

/** Signs a host's CSR with the CA in `caDir`: two years, server and client use, the names given here only. */
export async function signHostCsr(caDir: string, csr: string, hostName: string, address: string): Promise<string> {
  if (!existsSync(caKeyPath(caDir))) {
    throw new VirtnodeError('INVALID_STATE', 'this host does not hold the cluster CA key', { hint: 'run `virtnode cluster add` on the host that ran `cluster init`' });
  }
  const work = mkdtempSync(join(tmpdir(), 'virtnode-csr-'));
  try {
    writeFileSync(join(work, 'host.csr'), csr, { mode: 0o600 });
    writeFileSync(
      join(work, 'ext.cnf'),
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${hostAltNames(hostName, address)}`, ''].join('\n'),
    );
    await run(['openssl', 'x509', '-req', '-in', join(work, 'host.csr'), '-CA', join(caDir, 'ca.crt'), '-CAkey', caKeyPath(caDir), '-CAcreateserial', '-CAserial', join(work, 'ca.srl'),
      '-days', '730', '-sha256', '-subj', `/O=virtnode/CN=${hostName}`, '-extfile', join(work, 'ext.cnf'), '-out', join(work, 'host.crt')]);
    return readFileSync(join(work, 'host.crt'), 'utf8');
  } catch (e) {
    if (e instanceof VirtnodeError && e.code === 'COMMAND_FAILED') throw new VirtnodeError('INVALID', `csr: not a certificate request openssl can sign (${e.message})`, { field: 'csr' });
    throw e;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A host's own key and certificate, in one step (the CA's host, or tests). */
export async function issueHostCert(caDir: string, dir: string, hostName: string, address: string): Promise<HostTlsFiles> {
  const csr = await createKeyAndCsr(dir, hostName);
  const files = tlsFilesIn(dir);
  writeFileSync(files.cert, await signHostCsr(caDir, csr, hostName, address), { mode: 0o644 });
  if (caDir !== dir) writeFileSync(files.ca, readFileSync(join(caDir, 'ca.crt')), { mode: 0o644 });
  return files;
}
