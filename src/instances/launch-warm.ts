import { invalid } from '../lib/errors.ts';
import type { WarmModel } from '../templates/model.ts';
import type { ValidLaunch } from './launch-validate.ts';

/** A template's warm state, as a launch finds it through its image resolver. */
export interface WarmSource {
  /** The disk as it was at the save: the new instance's disk is an overlay on it. */
  diskPath: string;
  statePath: string;
  model: WarmModel;
}

/**
 * Whether this launch loads the template's warm state: asked for (`--warm`: anything that does not fit is refused,
 * naming the field), refused (`--cold`), or by default whenever the template has one and the launch fits it.
 * A memory state fixes the machine: CPUs, memory, accelerator and devices are the saved ones.
 */
export function chooseWarm(valid: ValidLaunch, image: { name: string; warm?: WarmSource }, diskInPool = false): WarmSource | undefined {
  if (valid.warm === false || valid.type === 'container') return undefined;
  const asked = valid.warm === true;
  const refuse = (field: string, message: string, hint: string): undefined => {
    if (asked) throw invalid(field, message, hint);
    return undefined;
  };
  const warm = image.warm;
  if (warm === undefined) return refuse('--warm', `${image.name} has no warm state`, `make a template with one (virtnode template create SRC NAME --warm), or launch cold`);
  const model = warm.model;
  if (valid.cpus !== model.cpus) return refuse('--cpus', `the warm state of ${image.name} has ${model.cpus} CPU(s), not ${valid.cpus}`, `use --cpus ${model.cpus}, or --cold`);
  if (valid.memoryMiB !== model.memoryMiB) return refuse('--memory', `the warm state of ${image.name} has ${model.memoryMiB} MiB of memory, not ${valid.memoryMiB}`, `use --memory ${model.memoryMiB}M, or --cold`);
  if (valid.accel !== 'auto' && valid.accel !== model.accel) return refuse('--accel', `the warm state of ${image.name} was saved under ${model.accel}`, `use --accel ${model.accel}, or --cold`);
  if (valid.seedFormat === 'http' || valid.seedFormat === 'configdrive') return refuse('--seed', `a warm launch gives the NoCloud seed through the guest agent, not as ${valid.seedFormat}`, 'leave --seed out, or --cold');
  if (valid.tuning !== undefined) return refuse('tuning', 'a warm state fixes how QEMU runs the guest: the tuning knobs cannot change it', 'leave them out, or --cold');
  if (valid.diskSizeBytes !== undefined) return refuse('--disk-size', 'a loaded guest keeps the disk size it was saved with', 'leave --disk-size out, or --cold');
  if (diskInPool) return refuse('--pool', "a warm launch's disk is an overlay beside the template's saved disk", 'leave --pool out, or --cold');
  return warm;
}
