import type { LaunchInput } from '../api.ts';
import { Field } from './Field.tsx';

type TuningBody = NonNullable<LaunchInput['tuning']>;

/** The tuning knobs as typed in the form; empty means "QEMU's default". */
export interface TuningForm {
  cpuModel: string;
  vcpuPins: string;
  emulatorPins: string;
  numaNodes: string;
  diskCache: string;
  diskAio: string;
  diskQueues: string;
  hugepages: boolean;
  discard: boolean;
  iothreads: boolean;
  freePageReporting: boolean;
}

export const EMPTY_TUNING: TuningForm = {
  cpuModel: '', vcpuPins: '', emulatorPins: '', numaNodes: '', diskCache: '', diskAio: '', diskQueues: '',
  hugepages: false, discard: false, iothreads: false, freePageReporting: false,
};

/** A CPU list as the kernel writes it (0-3,6), or undefined when it is not one. */
function cpuList(text: string): number[] | undefined {
  const cpus: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (m === null) return undefined;
    const last = Number(m[2] ?? m[1]);
    if (last < Number(m[1]) || last - Number(m[1]) > 4096) return undefined;
    for (let c = Number(m[1]); c <= last; c++) cpus.push(c);
  }
  return cpus;
}

function wholeNumber(text: string, max: number): boolean {
  return /^\d+$/.test(text.trim()) && Number(text) >= 1 && Number(text) <= max;
}

/** Each field's error, checked as you type (the daemon checks the host: online CPUs, free huge pages...). */
export function checkTuning(form: TuningForm, cpus: number): Partial<Record<keyof TuningForm, string>> {
  const errors: Partial<Record<keyof TuningForm, string>> = {};
  if (form.cpuModel.trim() !== '' && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(form.cpuModel.trim())) errors.cpuModel = 'a QEMU CPU model name, e.g. Skylake-Server-v4';
  if (form.vcpuPins.trim() !== '') {
    const pins = cpuList(form.vcpuPins);
    if (pins === undefined) errors.vcpuPins = 'host CPUs, e.g. 2,3 or 2-3';
    else if (Number.isInteger(cpus) && pins.length !== cpus) errors.vcpuPins = `one host CPU per vCPU: ${cpus} needed, ${pins.length} given`;
  }
  if (form.emulatorPins.trim() !== '' && cpuList(form.emulatorPins) === undefined) errors.emulatorPins = 'host CPUs, e.g. 0-1';
  if (form.numaNodes.trim() !== '') {
    if (!wholeNumber(form.numaNodes, 8)) errors.numaNodes = 'a whole number from 1 to 8';
    else if (Number.isInteger(cpus) && cpus % Number(form.numaNodes) !== 0) errors.numaNodes = `${cpus} vCPUs do not split evenly into ${form.numaNodes} nodes`;
  }
  if (form.diskQueues.trim() !== '' && !wholeNumber(form.diskQueues, 16)) errors.diskQueues = 'a whole number from 1 to 16';
  if (form.diskAio === 'native' && form.diskCache !== 'none' && form.diskCache !== 'directsync') errors.diskAio = 'native needs the disk cache none or directsync';
  return errors;
}

/** The API's tuning object, or undefined when every knob is left at its default. */
export function tuningBody(form: TuningForm): TuningBody | undefined {
  const body: Record<string, unknown> = {};
  if (form.cpuModel.trim() !== '') body['cpuModel'] = form.cpuModel.trim();
  if (form.vcpuPins.trim() !== '') body['vcpuPins'] = cpuList(form.vcpuPins);
  if (form.emulatorPins.trim() !== '') body['emulatorPins'] = cpuList(form.emulatorPins);
  if (form.numaNodes.trim() !== '') body['numaNodes'] = Number(form.numaNodes);
  if (form.diskCache !== '') body['diskCache'] = form.diskCache;
  if (form.diskAio !== '') body['diskAio'] = form.diskAio;
  if (form.diskQueues.trim() !== '') body['diskQueues'] = Number(form.diskQueues);
  for (const flag of ['hugepages', 'discard', 'iothreads', 'freePageReporting'] as const) if (form[flag]) body[flag] = true;
  return Object.keys(body).length === 0 ? undefined : (body as TuningBody);
}

/** The knobs, folded away by default: most launches need none of them. */
export function TuningFields({ form, errors, onChange }: { form: TuningForm; errors: Partial<Record<keyof TuningForm, string>>; onChange: (form: TuningForm) => void }) {
  const text = (key: keyof TuningForm, label: string, placeholder: string, hint?: string) => (
    <Field id={`tuning-${key}`} label={label} error={errors[key]} {...(hint === undefined ? {} : { hint })}>
      {(p) => <input {...p} name={key} value={form[key] as string} placeholder={placeholder} onInput={(e) => onChange({ ...form, [key]: (e.target as HTMLInputElement).value })} />}
    </Field>
  );
  const choice = (key: 'diskCache' | 'diskAio', label: string, values: string[]) => (
    <Field id={`tuning-${key}`} label={label} error={errors[key]}>
      {(p) => (
        <select {...p} name={key} value={form[key]} onChange={(e) => onChange({ ...form, [key]: (e.target as HTMLSelectElement).value })}>
          <option value="">default</option>
          {values.map((v) => (
            <option value={v}>{v}</option>
          ))}
        </select>
      )}
    </Field>
  );
  const flag = (key: 'hugepages' | 'discard' | 'iothreads' | 'freePageReporting', label: string) => (
    <label>
      <input type="checkbox" name={key} checked={form[key]} onChange={(e) => onChange({ ...form, [key]: (e.target as HTMLInputElement).checked })} /> {label}
    </label>
  );
  return (
    <details class="tuning">
      <summary>Performance tuning (checked against the host before anything starts)</summary>
      <div class="row">
        {text('cpuModel', 'CPU model', 'host (KVM) or max (TCG)', 'see qemu-system-x86_64 -cpu help')}
        {text('vcpuPins', 'Pin vCPUs to host CPUs', 'e.g. 2,3')}
        {text('emulatorPins', "Pin QEMU's other threads", 'e.g. 0-1')}
        {text('numaNodes', 'NUMA nodes', '1')}
      </div>
      <div class="row">
        {choice('diskCache', 'Disk cache', ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'])}
        {choice('diskAio', 'Disk AIO', ['threads', 'native', 'io_uring'])}
        {text('diskQueues', 'Disk queues', 'one per vCPU')}
      </div>
      <fieldset class="flags">
        <legend>Other knobs</legend>
        {flag('hugepages', 'huge pages')}
        {flag('discard', 'discard (TRIM frees disk space)')}
        {flag('iothreads', 'an I/O thread per disk')}
        {flag('freePageReporting', 'free page reporting (the guest gives back what it frees)')}
      </fieldset>
    </details>
  );
}
