/**
 * Files of a pool by their path: a local path, or an nfs:// URL that QEMU and qemu-img open themselves and
 * virtnode reaches over NFSv3 RPC for what qemu-img cannot do (test, remove). Nothing here mounts anything.
 */
import { existsSync, rmSync } from 'node:fs';
import { VirtnodeError } from '../lib/errors.ts';
import { NfsExport, parseNfsUrl } from './client.ts';

export function isNfsPath(path: string): boolean {
  return path.startsWith('nfs://');
}

async function nfsFile(url: string): Promise<{ share: NfsExport; file: string }> {
  const parsed = parseNfsUrl(url);
  if (parsed === undefined) throw new VirtnodeError('INTERNAL', `${url} is not an nfs://SERVER/EXPORT/FILE URL`);
  return { share: await NfsExport.open(parsed, 'pool source'), file: parsed.file };
}

export async function fileExists(path: string): Promise<boolean> {
  if (!isNfsPath(path)) return existsSync(path);
  const { share, file } = await nfsFile(path);
  return share.exists(file);
}

/** Removes a file; a missing one is no error. */
export async function removeFile(path: string): Promise<void> {
  if (!isNfsPath(path)) {
    rmSync(path, { force: true });
    return;
  }
  const { share, file } = await nfsFile(path);
  await share.remove(file);
}
