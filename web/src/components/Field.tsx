import type { ComponentChildren } from 'preact';

/**
 * A labelled form control with its error under it, tied together for screen readers (aria-invalid,
 * aria-describedby). `id` is unique on the page.
 */
export function Field({ id, label, error, hint, children }: { id: string; label: string; error?: string | undefined; hint?: string; children: (props: ControlProps) => ComponentChildren }) {
  const described = [error === undefined ? undefined : `${id}-error`, hint === undefined ? undefined : `${id}-hint`].filter((x) => x !== undefined).join(' ');
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children({ id, 'aria-invalid': error === undefined ? 'false' : 'true', ...(described === '' ? {} : { 'aria-describedby': described }) })}
      {hint !== undefined && (
        <small id={`${id}-hint`} class="muted">
          {hint}
        </small>
      )}
      {error !== undefined && (
        <small id={`${id}-error`} class="field-error" data-testid={`${id}-error`}>
          {error}
        </small>
      )}
    </div>
  );
}

export interface ControlProps {
  id: string;
  'aria-invalid': 'true' | 'false';
  'aria-describedby'?: string;
}

/** The API's answer to a form, shown in the form (role=alert, so it is read out). */
export function FormError({ error }: { error: string | undefined }) {
  if (error === undefined) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}
