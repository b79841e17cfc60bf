import { useState } from 'preact/hooks';
import { API, client, start, type Operation } from '../api.ts';
import { Field, FormError } from '../components/Field.tsx';
import { Listing } from '../components/Listing.tsx';
import { OperationProgress } from '../components/OperationProgress.tsx';
import { bytes, message, when } from '../lib/format.ts';
import { useForm } from '../lib/use-form.ts';
import { operationEnded, useResource } from '../lib/use-resource.ts';
import * as v from '../lib/validate.ts';
import type { Live } from '../store.ts';
import { TableHead } from '../components/TableHead.tsx';

function PullForm({ onStarted }: { onStarted: (op: Operation) => void }) {
  const form = useForm({ url: '', name: '', sha256: '' }, () => ({ url: v.url, name: v.optional(v.name), sha256: v.optional(v.sha256) }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    const body = { url: values.url.trim(), ...(values.name === '' ? {} : { name: values.name }), ...(values.sha256.trim() === '' ? {} : { sha256: values.sha256.trim() }) };
    start(API.images.pull, body).then(
      (op) => {
        onStarted(op);
        form.reset();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="pull-title" onSubmit={send} noValidate>
      <h2 id="pull-title">Pull an image</h2>
      <Field id="pull-url" label="URL" error={form.shown('url')}>
        {(p) => <input {...p} {...form.bind('url')} type="url" placeholder="https://…/disk.qcow2" size={40} />}
      </Field>
      <Field id="pull-name" label="Name" error={form.shown('name')} hint="default: from the file name">
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <Field id="pull-sha256" label="SHA-256" error={form.shown('sha256')} hint="optional: verified after the download">
        {(p) => <input {...p} {...form.bind('sha256')} size={20} />}
      </Field>
      <button type="submit">Pull</button>
      <FormError error={error} />
    </form>
  );
}

/** Recipes the image builder knows (src/images/build/recipes.ts). */
const RECIPES = ['debian-12'];

function BuildForm({ onStarted }: { onStarted: (op: Operation) => void }) {
  const form = useForm({ recipe: RECIPES[0]!, name: '', size: '', packages: '' }, () => ({ name: v.optional(v.name), size: v.optional(v.size), packages: v.packages }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    const packages = values.packages.split(/[\s,]+/).filter((p) => p !== '');
    const body = {
      recipe: values.recipe,
      ...(values.name === '' ? {} : { name: values.name }),
      ...(values.size.trim() === '' ? {} : { size: values.size.trim() }),
      ...(packages.length === 0 ? {} : { packages }),
    };
    start(API.images.build, body).then(
      (op) => {
        onStarted(op);
        form.reset();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="build-title" onSubmit={send} noValidate>
      <h2 id="build-title">Build an image from Debian packages</h2>
      <Field id="build-recipe" label="Recipe">
        {(p) => (
          <select {...p} {...form.bind('recipe')}>
            {RECIPES.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        )}
      </Field>
      <Field id="build-name" label="Image name" error={form.shown('name')} hint="default: the recipe's name">
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <Field id="build-size" label="Disk size" error={form.shown('size')} hint="default 4G">
        {(p) => <input {...p} {...form.bind('size')} size={6} />}
      </Field>
      <Field id="build-packages" label="Extra packages" error={form.shown('packages')} hint="space-separated; a build without extras is reused from the cache">
        {(p) => <input {...p} {...form.bind('packages')} size={24} />}
      </Field>
      <button type="submit">Build</button>
      <FormError error={error} />
    </form>
  );
}

function ImportForm({ onStarted }: { onStarted: (op: Operation) => void }) {
  const form = useForm({ file: '', name: '' }, () => ({ file: v.absolutePath, name: v.optional(v.name) }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    start(API.images.import, { file: values.file.trim(), ...(values.name === '' ? {} : { name: values.name }) }).then(
      (op) => {
        onStarted(op);
        form.reset();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="import-title" onSubmit={send} noValidate>
      <h2 id="import-title">Import a file on the host</h2>
      <Field id="import-file" label="File" error={form.shown('file')}>
        {(p) => <input {...p} {...form.bind('file')} placeholder="/srv/images/disk.qcow2" size={40} />}
      </Field>
      <Field id="import-name" label="Name" error={form.shown('name')} hint="default: from the file name">
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <button type="submit">Import</button>
      <FormError error={error} />
    </form>
  );
}

/** The image store: what is there, pull and import with live progress, remove. */
export function ImagesPage({ live }: { live: Live }) {
  const images = useResource(() => client.images.list(), operationEnded('image'));
  const [started, setStarted] = useState<Operation[]>([]);
  const [error, setError] = useState<string | undefined>();
  const [note, setNote] = useState<string | undefined>();
  const onStarted = (op: Operation) => setStarted((list) => [op, ...list]);
  const remove = (name: string) => {
    if (!window.confirm(`Remove image ${name}?`)) return;
    setError(undefined);
    setNote(undefined);
    client.images.remove({ name }).then(
      (r) => {
        setNote(`Removed ${name}${r.fileDeleted ? '' : ' (its file stays: other names or instances use it)'}.`);
        void images.reload();
      },
      (e: unknown) => setError(message(e)),
    );
  };
  return (
    <section>
      <header class="page-header">
        <h1>Images</h1>
      </header>
      <FormError error={error ?? images.error} />
      {note !== undefined && (
        <p class="ok" role="status">
          {note}
        </p>
      )}
      <Listing items={images.data} empty="No images yet.">
        {(items) => (
          <table data-testid="images">
            <TableHead columns={['Name', 'Format', 'Virtual size', 'On disk', 'Source', 'Verified', 'Added']} actions />
            <tbody>
              {items.map((i) => (
                <tr data-image={i.name}>
                  <td>{i.name}</td>
                  <td>{i.format}</td>
                  <td>{bytes(i.virtualSize)}</td>
                  <td>{bytes(i.fileSize)}</td>
                  <td class="wrap">{i.source}</td>
                  <td>{i.verifiedBy ?? 'no'}</td>
                  <td>{when(i.createdAt)}</td>
                  <td>
                    <button type="button" class="danger" aria-label={`Remove image ${i.name}`} onClick={() => remove(i.name)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listing>
      {started.length > 0 && (
        <div aria-live="polite">
          <h2>Transfers</h2>
          {started.map((op) => {
            const current = live.operations.get(op.id) ?? op;
            return <OperationProgress op={current} label={`${current.kind} ${current.target ?? ''}`.trim()} />;
          })}
        </div>
      )}
      <div class="forms">
        <PullForm onStarted={onStarted} />
        <ImportForm onStarted={onStarted} />
        <BuildForm onStarted={onStarted} />
      </div>
    </section>
  );
}
