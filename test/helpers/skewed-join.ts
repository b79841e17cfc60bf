/**
 * A join request from a host whose clock is off by SKEW_MS (run inside that host's network namespace):
 * `node skewed-join.ts TOKEN ADDRESS SKEW_MS`. Prints the error message the cluster answers, or "admitted".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJoinToken } from '../../src/cluster/join-token.ts';
import { fetchPinnedCa, peerCall } from '../../src/cluster/peer-http.ts';
import { createKeyAndCsr } from '../../src/cluster/pki.ts';

const [text, address, skew] = process.argv.slice(2) as [string, string, string];
const token = decodeJoinToken(text);
const dir = mkdtempSync(join(tmpdir(), 'virtnode-skew-'));
try {
  const ca = await fetchPinnedCa(token.apiUrl, token.caFingerprint);
  const csr = await createKeyAndCsr(dir, token.host);
  await peerCall(token.apiUrl, '/v1/join', { id: token.id, secret: token.secret, host: token.host, address, apiPort: 7443, csr, now: Date.now() + Number(skew) }, { ca });
  process.stdout.write('admitted\n');
} catch (e) {
  process.stdout.write(`${(e as Error).message}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
