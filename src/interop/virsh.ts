/** Reads a domain's definition from libvirt (`virsh dumpxml`), for `virtnode import libvirt --from URI NAME`. */
import { run } from '../exec/run.ts';
import { invalid, isVirtnodeError, VirtnodeError } from '../lib/errors.ts';

const VIRSH_TIMEOUT_MS = 60_000;
const URI = /^[a-z][a-z0-9+.-]*:\/\/[^\s]*$/i;

/** The persistent (inactive) definition: what the domain boots with next, not a running domain's live state. */
export async function virshDumpXml(uri: string, domain: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  if (!URI.test(uri)) throw invalid('--from', `"${uri}" is not a libvirt URI`, 'e.g. qemu:///system');
  if (domain === '' || domain.startsWith('-')) throw invalid('domain', `"${domain}" is not a domain name`);
  try {
    const result = await run(['virsh', '--connect', uri, 'dumpxml', '--inactive', '--domain', domain], {
      timeoutMs: VIRSH_TIMEOUT_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return result.stdout;
  } catch (e) {
    if (isVirtnodeError(e, 'MISSING_PROGRAM')) throw e;
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new VirtnodeError('NOT_FOUND', `virsh could not read domain ${domain} from ${uri}${stderr ? `: ${stderr.split('\n')[0]}` : ''}`, {
      field: 'domain',
      hint: `check it with: virsh --connect ${uri} list --all`,
      cause: e,
    });
  }
}
