import { useEffect, useState } from 'preact/hooks';
import { api, LOAD_RETRY, type Instance, type InstanceState, type Operation } from './api.ts';
import { subscribe } from './events.ts';
import { message } from './lib/format.ts';
import { reloader } from './lib/reloader.ts';

/** The page's view of the instances, kept current by the events stream (no reloads, no polling). */
export interface Live {
  instances: Map<string, Instance>;
  operations: Map<string, Operation>;
  loaded: boolean;
  error: string | undefined;
}

export function useLive(): Live {
  const [live, setLive] = useState<Live>({ instances: new Map(), operations: new Map(), loaded: false, error: undefined });

  useEffect(() => {
    // The list (not GET /instances/:name) because an instance may be gone by the time its event is handled, and a
    // list never answers 404 for that. One list request at a time: events during it ask for one more afterwards.
    const list = reloader(
      api.instances,
      {
        loaded: (instances) => setLive((l) => ({ ...l, instances: new Map(instances.map((i) => [i.name, i])), loaded: true, error: undefined })),
        failed: (e) => setLive((l) => ({ ...l, loaded: true, error: message(e) })),
      },
      LOAD_RETRY,
    );
    const refreshAll = (): void => void list.reload();
    const setState = (name: string, state: InstanceState, reason: string | undefined) =>
      setLive((l) => {
        const current = l.instances.get(name);
        if (current === undefined) return l;
        const next: Instance = { ...current, state };
        if (reason === undefined) delete next.reason;
        else next.reason = reason;
        return { ...l, instances: new Map(l.instances).set(name, next) };
      });

    refreshAll();
    const unsubscribe = subscribe((event) => {
      if (event.type === 'hello') {
        refreshAll(); // after a reconnect, catch up on anything missed
      } else if (event.type === 'instance') {
        if (event.state === 'deleted') {
          setLive((l) => {
            const instances = new Map(l.instances);
            instances.delete(event.name);
            return { ...l, instances };
          });
          // A list requested before the deletion must not bring it back (refreshAll asks again after it). In a
          // cluster, an instance that moved away is deleted here but listed again with its new host.
          refreshAll();
        } else {
          setState(event.name, event.state, event.reason);
          refreshAll(); // addresses, pid, readiness may have changed with the state
        }
      } else if (event.type === 'operation') {
        setLive((l) => ({ ...l, operations: new Map(l.operations).set(event.operation.id, event.operation) }));
      }
    });
    return () => {
      list.stop();
      unsubscribe();
    };
  }, []);
  return live;
}
