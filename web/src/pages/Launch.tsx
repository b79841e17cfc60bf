import { useEffect, useState } from 'preact/hooks';
import { api, type CreateInput, type Image, type LaunchInput } from '../api.ts';
import { CloudConfigEditor, checkUserData } from '../components/CloudConfigEditor.tsx';
import { EMPTY_TUNING, TuningFields, checkTuning, tuningBody } from '../components/TuningFields.tsx';

type Source = 'image' | 'kernel';
type Kind = 'vm' | 'container';

/** The launch form: from an image (cloud-init identity, an operation) or a kernel on the host (create + start). */
export function Launch({ onLaunched }: { onLaunched: (name: string) => void }) {
  const [images, setImages] = useState<Image[]>([]);
  const [source, setSource] = useState<Source>('image');
  // A system container boots the same image (its root filesystem over overlayfs, through LXC).
  const [kind, setKind] = useState<Kind>('vm');
  const container = source === 'image' && kind === 'container';
  const [form, setForm] = useState({ name: '', image: '', cpus: '1', memory: '1G', diskSize: '', sshKeys: '', kernel: '', initrd: '', cmdline: '' });
  const [userData, setUserData] = useState('');
  const [tuning, setTuning] = useState(EMPTY_TUNING);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.images().then(
      (list) => {
        setImages(list);
        if (list.length > 0) setForm((f) => (f.image === '' ? { ...f, image: list[0]!.name } : f));
        else setSource('kernel');
      },
      () => setSource('kernel'),
    );
  }, []);

  const field = (key: keyof typeof form) => ({
    name: key,
    value: form[key],
    onInput: (e: Event) => setForm((f) => ({ ...f, [key]: (e.target as HTMLInputElement).value })),
  });
  const userDataErrors = checkUserData(userData).filter((i) => i.severity === 'error').length;
  // The tuning knobs are QEMU's: a container has none of them.
  const tuningErrors = container ? {} : checkTuning(tuning, Number(form.cpus));

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setBusy(true);
    const optional = (value: string) => (value.trim() === '' ? undefined : value.trim());
    try {
      const cpus = Number(form.cpus);
      if (source === 'image') {
        const keys = form.sshKeys.split('\n').map((k) => k.trim()).filter((k) => k !== '');
        const body = {
          image: form.image,
          type: container ? 'container' : undefined,
          name: optional(form.name),
          cpus,
          memory: optional(form.memory),
          diskSize: optional(form.diskSize),
          sshAuthorizedKeys: keys.length > 0 ? keys : undefined,
          userData: optional(userData),
          tuning: container ? undefined : tuningBody(tuning),
        };
        const op = await api.launch(JSON.parse(JSON.stringify(body)) as LaunchInput);
        onLaunched(op.target?.replace(/^instances\//, '') ?? form.name);
      } else {
        const body = {
          name: form.name,
          cpus,
          memory: optional(form.memory),
          diskSize: optional(form.diskSize),
          kernel: optional(form.kernel),
          initrd: optional(form.initrd),
          cmdline: optional(form.cmdline),
          tuning: tuningBody(tuning),
          start: true,
        };
        const created = await api.create(JSON.parse(JSON.stringify(body)) as CreateInput);
        onLaunched(created.name);
      }
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section>
      <header class="page-header">
        <h1>Launch an instance</h1>
      </header>
      <form class="launch" onSubmit={(e) => void submit(e)}>
        <fieldset class="source">
          <legend>Boot from</legend>
          <label>
            <input type="radio" name="source" value="image" checked={source === 'image'} disabled={images.length === 0} onChange={() => setSource('image')} /> an image
          </label>
          <label>
            <input type="radio" name="source" value="kernel" checked={source === 'kernel'} onChange={() => setSource('kernel')} /> a kernel on the host
          </label>
        </fieldset>
        <label>
          Name <input {...field('name')} placeholder={source === 'image' ? 'generated if empty' : 'web1'} pattern={'[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?'} />
        </label>
        {source === 'image' && (
          <fieldset class="source">
            <legend>Kind</legend>
            <label>
              <input type="radio" name="kind" value="vm" checked={kind === 'vm'} onChange={() => setKind('vm')} /> a virtual machine
            </label>
            <label>
              <input type="radio" name="kind" value="container" checked={kind === 'container'} onChange={() => setKind('container')} /> a system container (LXC)
            </label>
          </fieldset>
        )}
        {source === 'image' ? (
          <label>
            Image
            <select name="image" value={form.image} onChange={(e) => setForm((f) => ({ ...f, image: (e.target as HTMLSelectElement).value }))}>
              {images.map((i) => (
                <option value={i.name}>{i.name}</option>
              ))}
            </select>
          </label>
        ) : (
          <>
            <label>
              Kernel <input {...field('kernel')} placeholder="/path/to/vmlinuz" />
            </label>
            <label>
              Initrd <input {...field('initrd')} placeholder="/path/to/initrd.img" />
            </label>
            <label>
              Kernel command line <input {...field('cmdline')} placeholder="console=ttyS0" />
            </label>
          </>
        )}
        <div class="row">
          <label>
            CPUs <input {...field('cpus')} type="number" min="1" />
          </label>
          <label>
            Memory <input {...field('memory')} placeholder="1G" />
          </label>
          <label>
            Disk size <input {...field('diskSize')} placeholder={container ? 'no limit' : source === 'image' ? 'the image size' : 'none'} />
          </label>
        </div>
        {source === 'image' && (
          <>
            <label>
              SSH public keys (one a line)
              <textarea {...field('sshKeys')} rows={3} placeholder="ssh-ed25519 AAAA… you@laptop" />
            </label>
            <span class="field-label">Cloud-config (user-data), checked as you type</span>
            <CloudConfigEditor value={userData} onInput={setUserData} />
          </>
        )}
        {!container && <TuningFields form={tuning} errors={tuningErrors} onChange={setTuning} />}
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || (source === 'image' && userDataErrors > 0) || Object.keys(tuningErrors).length > 0}>
          {busy ? 'Launching…' : 'Launch'}
        </button>
      </form>
    </section>
  );
}
