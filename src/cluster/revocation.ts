/**
 * Revoked host certificates. `cluster remove` records the removed host's certificate (by serial number) under
 * `/virtnode/revoked/SERIAL`, in the transaction that forgets the host. Every daemon keeps the list (read at start,
 * then watched): its cluster API refuses a revoked client certificate on every request. A host running an etcd
 * member also keeps it as a CRL file that etcd reads on each new connection (`--client-crl-file`,
 * `--peer-crl-file`), so etcd refuses the removed host's certificate too. etcd checks only the serial numbers in it
 * (not who signed it), and only this host holds its own key: the file is signed with the host's own key (the CA
 * key stays on the host that made the cluster). Connections made before the revocation are not cut by etcd.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import type { Kv, KvWatch, KvWrite } from './kv.ts';
import type { HostTlsFiles } from './pki.ts';

export const REVOKED_KEYS = {
  entry: (serial: string) => `/virtnode/revoked/${serial}`,
  all: '/virtnode/revoked/',
} as const;

/** What `/virtnode/revoked/SERIAL` holds. */
export interface Revocation {
  /** Upper-case hex, as openssl and Node print it. */
  serial: string;
  host: string;
  revokedAt: string;
  /** The host that removed it. */
  by: string;
}

/** A certificate's serial number, normalised (upper-case hex, no leading zeros beyond an even length). */
export function certSerial(pem: string): string {
  return normalSerial(new X509Certificate(pem).serialNumber);
}

export function normalSerial(hex: string): string {
  const s = hex.replace(/:/g, '').toUpperCase().replace(/^0+/, '') || '0';
  return s.length % 2 === 0 ? s : `0${s}`;
}

export function revocationWrite(r: Revocation): KvWrite {
  return { put: REVOKED_KEYS.entry(r.serial), value: JSON.stringify(r) };
}

/** openssl's index.txt date: YYMMDDHHMMSSZ. */
const indexDate = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';

/** Writes `file` (PEM CRL listing `revoked`), signed with `signer`'s key; atomically (etcd may read it any time). */
export async function writeCrl(file: string, signer: HostTlsFiles, revoked: readonly Revocation[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'virtnode-crl-'));
  try {
    const index = revoked.map((r) => `R\t${indexDate(new Date(Date.now() + 3650 * 86_400_000))}\t${indexDate(new Date(r.revokedAt))}\t${r.serial}\tunknown\t/O=virtnode/CN=${r.host}\n`).join('');
    writeFileSync(join(work, 'index.txt'), index);
    writeFileSync(join(work, 'ca.cnf'), ['[ca]', 'default_ca = d', '[d]', `database = ${join(work, 'index.txt')}`, 'default_md = sha256', 'default_crl_days = 3650', ''].join('\n'));
    const partial = `${file}.partial`;
    await run(['openssl', 'ca', '-batch', '-gencrl', '-config', join(work, 'ca.cnf'), '-cert', signer.cert, '-keyfile', signer.key, '-out', partial]);
    renameSync(partial, file);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * This host's copy of the list: `has(serial)` for the cluster API; `start` reads it and follows changes, calling
 * `onChange` with the whole list (the daemon rewrites etcd's CRL file then).
 */
export class RevocationList {
  private serials = new Map<string, Revocation>();
  private watch: KvWatch | undefined;

  has(serial: string): Revocation | undefined {
    return this.serials.get(normalSerial(serial));
  }

  async start(kv: Kv, onChange: (all: Revocation[]) => Promise<void>): Promise<void> {
    const load = async () => {
      const { entries } = await kv.list(REVOKED_KEYS.all);
      this.serials = new Map(entries.map((e) => JSON.parse(e.value) as Revocation).map((r) => [r.serial, r]));
      await onChange([...this.serials.values()]);
    };
    let reloading = Promise.resolve();
    this.watch = await kv.watch(REVOKED_KEYS.all, () => {
      reloading = reloading.then(load).catch(() => undefined);
    });
    await load();
  }

  async stop(): Promise<void> {
    await this.watch?.cancel().catch(() => undefined);
    this.watch = undefined;
  }
}

/** Makes an empty CRL file when there is none yet: etcd refuses every connection while its CRL file is missing. */
export async function ensureCrl(file: string, signer: HostTlsFiles): Promise<void> {
  if (!existsSync(file)) await writeCrl(file, signer, []);
}
