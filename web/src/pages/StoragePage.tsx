import { useState } from 'preact/hooks';
import { API, client, start, type Operation, type Volume } from '../api.ts';
import { OperationProgress } from '../components/OperationProgress.tsx';
import type { DaemonEvent } from '../events.ts';
import { Field, FormError } from '../components/Field.tsx';
import { Listing } from '../components/Listing.tsx';
import { bytes, message } from '../lib/format.ts';
import { useForm } from '../lib/use-form.ts';
import { useResource } from '../lib/use-resource.ts';
import * as v from '../lib/validate.ts';
import type { Live } from '../store.ts';
import { TableHead } from '../components/TableHead.tsx';

function CreatePool({ onCreated }: { onCreated: () => void }) {
  const form = useForm({ name: '', type: 'dir', path: '', source: '' }, (values) =>
    values.type === 'nfs' ? { name: v.name, source: v.nfsSource } : { name: v.name, path: v.absolutePath },
  );
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    const where = values.type === 'nfs' ? { source: values.source.trim() } : { path: values.path.trim() };
    client.pools.create({ name: values.name, type: values.type, ...where }).then(
      () => {
        form.reset();
        onCreated();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="create-pool-title" onSubmit={send} noValidate>
      <h3 id="create-pool-title">Add a pool</h3>
      <Field id="pool-name" label="Pool name" error={form.shown('name')}>
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <Field id="pool-type" label="Type">
        {(p) => (
          <select {...p} {...form.bind('type')} onChange={(e) => form.set('type', (e.target as HTMLSelectElement).value)}>
            <option value="dir">directory on this host</option>
            <option value="shared-dir">shared directory (mounted on every host)</option>
            <option value="nfs">NFS export (QEMU's own client)</option>
          </select>
        )}
      </Field>
      {form.values.type === 'nfs' ? (
        <Field id="pool-source" label="NFS source" error={form.shown('source')} hint="SERVER:/EXPORT">
          {(p) => <input {...p} {...form.bind('source')} size={30} />}
        </Field>
      ) : (
        <Field id="pool-path" label="Directory" error={form.shown('path')} hint="an existing directory on the host">
          {(p) => <input {...p} {...form.bind('path')} size={30} />}
        </Field>
      )}
      <button type="submit">Add pool</button>
      <FormError error={error} />
    </form>
  );
}

function CreateVolume({ pools, onCreated }: { pools: string[]; onCreated: () => void }) {
  const form = useForm({ name: '', size: '', format: 'qcow2', pool: '' }, () => ({ name: v.name, size: v.size }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    client.volumes.create({ name: values.name, size: values.size.trim(), format: values.format, ...(values.pool === '' ? {} : { pool: values.pool }) }).then(
      () => {
        form.reset();
        onCreated();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="create-volume-title" onSubmit={send} noValidate>
      <h3 id="create-volume-title">Create a volume</h3>
      <Field id="volume-name" label="Volume name" error={form.shown('name')}>
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <Field id="volume-size" label="Size" error={form.shown('size')}>
        {(p) => <input {...p} {...form.bind('size')} placeholder="10G" size={8} />}
      </Field>
      <Field id="volume-format" label="Format">
        {(p) => (
          <select {...p} {...form.bind('format')} onChange={(e) => form.set('format', (e.target as HTMLSelectElement).value)}>
            <option value="qcow2">qcow2</option>
            <option value="raw">raw</option>
          </select>
        )}
      </Field>
      <Field id="volume-pool" label="Pool">
        {(p) => (
          <select {...p} {...form.bind('pool')} onChange={(e) => form.set('pool', (e.target as HTMLSelectElement).value)}>
            <option value="">(the default pool)</option>
            {pools.map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        )}
      </Field>
      <button type="submit">Create volume</button>
      <FormError error={error} />
    </form>
  );
}

/** Copies a file on the host into a new volume, or a volume out to a new file (both operations). */
function CopyForms({ volumes, onStarted }: { volumes: string[]; onStarted: (op: Operation) => void }) {
  const importing = useForm({ file: '', name: '' }, () => ({ file: v.absolutePath, name: v.optional(v.name) }));
  const exporting = useForm({ volume: '', file: '', format: '' }, () => ({ volume: v.required('a volume'), file: v.absolutePath }));
  const [importError, setImportError] = useState<string | undefined>();
  const [exportError, setExportError] = useState<string | undefined>();
  const sendImport = importing.submit((values) => {
    setImportError(undefined);
    start(API.volumes.import, { file: values.file.trim(), ...(values.name === '' ? {} : { name: values.name }) }).then(
      (op) => {
        importing.reset();
        onStarted(op);
      },
      (e: unknown) => setImportError(message(e)),
    );
  });
  const sendExport = exporting.submit((values) => {
    setExportError(undefined);
    start(API.volumes.export, { name: values.volume, file: values.file.trim(), ...(values.format === '' ? {} : { format: values.format }) }).then(
      (op) => {
        exporting.reset();
        onStarted(op);
      },
      (e: unknown) => setExportError(message(e)),
    );
  });
  return (
    <div class="forms">
      <form class="inline-form" aria-labelledby="import-volume-title" onSubmit={sendImport} noValidate>
        <h3 id="import-volume-title">Import a volume</h3>
        <Field id="volume-import-file" label="Image file" error={importing.shown('file')} hint="on the host; its backing chain is flattened">
          {(p) => <input {...p} {...importing.bind('file')} size={30} />}
        </Field>
        <Field id="volume-import-name" label="New volume" error={importing.shown('name')} hint="default: from the file name">
          {(p) => <input {...p} {...importing.bind('name')} />}
        </Field>
        <button type="submit">Import volume</button>
        <FormError error={importError} />
      </form>
      <form class="inline-form" aria-labelledby="export-volume-title" onSubmit={sendExport} noValidate>
        <h3 id="export-volume-title">Export a volume</h3>
        <Field id="volume-export-volume" label="Volume to export" error={exporting.shown('volume')}>
          {(p) => (
            <select {...p} {...exporting.bind('volume')} onChange={(e) => exporting.set('volume', (e.target as HTMLSelectElement).value)}>
              <option value="">choose…</option>
              {volumes.map((name) => (
                <option value={name}>{name}</option>
              ))}
            </select>
          )}
        </Field>
        <Field id="volume-export-file" label="To the new file" error={exporting.shown('file')} hint="on the host; never overwritten">
          {(p) => <input {...p} {...exporting.bind('file')} size={30} />}
        </Field>
        <Field id="volume-export-format" label="As">
          {(p) => (
            <select {...p} {...exporting.bind('format')} onChange={(e) => exporting.set('format', (e.target as HTMLSelectElement).value)}>
              <option value="">its own format</option>
              <option value="qcow2">qcow2</option>
              <option value="raw">raw</option>
            </select>
          )}
        </Field>
        <button type="submit">Export volume</button>
        <FormError error={exportError} />
      </form>
    </div>
  );
}

/** One volume's row: resize, attach to or detach from an instance, delete. */
function VolumeRow({ volume, instances, onChanged, onError }: { volume: Volume; instances: string[]; onChanged: (note: string) => void; onError: (m: string) => void }) {
  const [size, setSize] = useState('');
  const [sizeError, setSizeError] = useState<string | undefined>();
  const [target, setTarget] = useState('');
  const id = `volume-${volume.name}`;
  const run = (work: Promise<unknown>, note: string) => work.then(() => onChanged(note), (e: unknown) => onError(message(e)));
  const resize = (e: Event) => {
    e.preventDefault();
    const problem = v.size(size);
    setSizeError(problem);
    if (problem === undefined) void run(client.volumes.resize({ name: volume.name, size: size.trim() }), `Resized ${volume.name} to ${size.trim()}.`).then(() => setSize(''));
  };
  return (
    <tr data-volume={volume.name}>
      <td>{volume.name}</td>
      <td>{volume.pool}</td>
      <td>{volume.format}</td>
      <td data-testid="volume-size">{bytes(volume.virtualSize)}</td>
      <td>{bytes(volume.allocation)}</td>
      <td data-testid="volume-attached">{volume.attachedTo ?? '–'}</td>
      <td class="actions">
        <form class="row-form" onSubmit={resize} noValidate aria-label={`Resize ${volume.name}`}>
          <label for={`${id}-size`} class="sr-only">
            New size of {volume.name}
          </label>
          <input
            id={`${id}-size`}
            name="size"
            size={6}
            placeholder="new size"
            value={size}
            aria-invalid={sizeError === undefined ? 'false' : 'true'}
            {...(sizeError === undefined ? {} : { 'aria-describedby': `${id}-size-error` })}
            onInput={(e) => {
              const value = (e.target as HTMLInputElement).value;
              setSize(value);
              setSizeError(v.size(value));
            }}
          />
          <button type="submit">Resize</button>
          {sizeError !== undefined && (
            <small id={`${id}-size-error`} class="field-error" data-testid={`${id}-size-error`}>
              {sizeError}
            </small>
          )}
        </form>
        {volume.attachedTo === undefined ? (
          <form
            class="row-form"
            aria-label={`Attach ${volume.name}`}
            onSubmit={(e) => {
              e.preventDefault();
              if (target !== '') void run(client.disks.attach({ name: target, volume: volume.name }), `Attached ${volume.name} to ${target}.`);
            }}
          >
            <label for={`${id}-target`} class="sr-only">
              Instance to attach {volume.name} to
            </label>
            <select id={`${id}-target`} name="instance" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              <option value="">instance…</option>
              {instances.map((i) => (
                <option value={i}>{i}</option>
              ))}
            </select>
            <button type="submit" disabled={target === ''}>
              Attach
            </button>
          </form>
        ) : (
          <button type="button" onClick={() => void run(client.disks.detach({ name: volume.attachedTo!, volume: volume.name }), `Detached ${volume.name} from ${volume.attachedTo}.`)}>
            Detach
          </button>
        )}
        <button
          type="button"
          class="danger"
          aria-label={`Delete volume ${volume.name}`}
          onClick={() => {
            if (window.confirm(`Delete volume ${volume.name} and its data?`)) void run(client.volumes.delete({ name: volume.name }), `Deleted ${volume.name}.`);
          }}
        >
          Delete
        </button>
      </td>
    </tr>
  );
}

/** Storage pools and volumes: create, resize, attach/detach to instances, remove. */
export function StoragePage({ live }: { live: Live }) {
  const refresh = (e: DaemonEvent) => e.type === 'instance' || (e.type === 'operation' && e.operation.status !== 'running');
  const pools = useResource(() => client.pools.list(), refresh);
  const volumes = useResource(() => client.volumes.list({}), refresh);
  const [error, setError] = useState<string | undefined>();
  const [note, setNote] = useState<string | undefined>();
  const [started, setStarted] = useState<Operation[]>([]);
  const instances = [...live.instances.keys()].sort();
  const changed = (text: string) => {
    setError(undefined);
    setNote(text);
    void volumes.reload();
    void pools.reload();
  };
  return (
    <section>
      <header class="page-header">
        <h1>Storage</h1>
      </header>
      <FormError error={error ?? pools.error ?? volumes.error} />
      {note !== undefined && (
        <p class="ok" role="status">
          {note}
        </p>
      )}
      <h2>Pools</h2>
      {pools.data !== undefined && (
        <table data-testid="pools">
          <TableHead columns={['Name', 'Type', 'Directory', 'Volumes', 'Used by volumes', 'Filesystem free']} actions />
          <tbody>
            {pools.data.map((p) => (
              <tr data-pool={p.name}>
                <td>{p.name}</td>
                <td>{p.type}</td>
                <td class="wrap">{p.path}</td>
                <td>{p.volumes}</td>
                <td>{bytes(p.volumeAllocation)}</td>
                <td>{p.problem === undefined ? `${bytes(p.available)} of ${bytes(p.capacity)}` : `unknown: ${p.problem}`}</td>
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Forget pool ${p.name}`}
                    onClick={() => {
                      if (window.confirm(`Forget pool ${p.name}? Its directory stays.`)) client.pools.delete({ name: p.name }).then(() => changed(`Forgot pool ${p.name}.`), (e: unknown) => setError(message(e)));
                    }}
                  >
                    Forget
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <CreatePool onCreated={() => changed('Pool added.')} />
      <h2>Volumes</h2>
      <Listing items={volumes.data} empty="No volumes yet.">
        {(items) => (
          <table data-testid="volumes">
            <TableHead columns={['Name', 'Pool', 'Format', 'Size', 'On disk', 'Attached to']} actions />
            <tbody>
              {items.map((vol) => (
                <VolumeRow volume={vol} instances={instances} onChanged={changed} onError={(m) => setError(m)} />
              ))}
            </tbody>
          </table>
        )}
      </Listing>
      <CreateVolume pools={(pools.data ?? []).map((p) => p.name)} onCreated={() => changed('Volume created.')} />
      <CopyForms volumes={(volumes.data ?? []).map((vol) => vol.name)} onStarted={(op) => setStarted((list) => [op, ...list])} />
      {started.length > 0 && (
        <div aria-live="polite">
          <h3>Copies</h3>
          {started.map((op) => {
            const current = live.operations.get(op.id) ?? op;
            return <OperationProgress op={current} label={`${current.kind} ${current.target ?? ''}`.trim()} />;
          })}
        </div>
      )}
    </section>
  );
}
