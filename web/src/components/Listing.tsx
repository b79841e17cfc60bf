import type { ComponentChildren } from 'preact';

/** A list from the API: "loading…" until it arrives, `empty` when it has nothing, else what `children` makes of it. */
export function Listing<T>({
  items,
  empty,
  emptyTestId,
  children,
}: {
  items: T[] | undefined;
  empty: string;
  emptyTestId?: string;
  children: (items: T[]) => ComponentChildren;
}) {
  if (items === undefined) return <p class="muted">loading…</p>;
  if (items.length === 0)
    return (
      <p class="muted" data-testid={emptyTestId}>
        {empty}
      </p>
    );
  return <>{children(items)}</>;
}
