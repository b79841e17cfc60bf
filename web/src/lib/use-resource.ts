import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { LOAD_RETRY } from '../api.ts';
import { subscribe, type DaemonEvent } from '../events.ts';
import { message } from './format.ts';
import { reloader, type Reloader } from './reloader.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => Promise<void>;
}

/**
 * Data a page shows, loaded once and again whenever the events stream says something it depends on changed
 * (`refreshOn`): no polling. A failed load keeps the last data, says why, and is tried again if it may pass.
 */
export function useResource<T>(load: () => Promise<T>, refreshOn: (event: DaemonEvent) => boolean = () => false, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  const current = useRef<Reloader | undefined>();
  useEffect(() => {
    const loader = reloader(
      load,
      {
        loaded: (value) => {
          setData(value);
          setError(undefined);
        },
        failed: (e) => setError(message(e)),
      },
      LOAD_RETRY,
    );
    current.current = loader;
    void loader.reload();
    const unsubscribe = subscribe((event) => {
      if (event.type === 'hello' || refreshOn(event)) void loader.reload();
    });
    return () => {
      loader.stop();
      unsubscribe();
    };
  }, deps);
  const reload = useCallback(() => current.current?.reload() ?? Promise.resolve(), []);
  return { data, error, reload };
}

/** An operation of one of these kinds ended (its result may have changed a list). */
export function operationEnded(...kinds: string[]): (event: DaemonEvent) => boolean {
  return (event) => event.type === 'operation' && event.operation.status !== 'running' && (kinds.length === 0 || kinds.some((k) => event.operation.kind.startsWith(k)));
}
