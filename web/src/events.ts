import { api, wsUrl, type InstanceState, type Operation } from './api.ts';

export type DaemonEvent =
  | { type: 'hello'; instances: Array<{ name: string; state: InstanceState; reason?: string }> }
  | { type: 'instance'; name: string; state: InstanceState | 'deleted'; previous?: InstanceState; reason?: string }
  | { type: 'operation'; operation: Operation };

type Listener = (event: DaemonEvent) => void;
const listeners = new Set<Listener>();
let socket: WebSocket | undefined;
let connecting = false;
let retry: ReturnType<typeof setTimeout> | undefined;
let connected = false;
const statusListeners = new Set<(connected: boolean) => void>();

function setConnected(value: boolean): void {
  connected = value;
  for (const listener of statusListeners) listener(value);
}

/**
 * One events WebSocket per page (a fresh ticket each time it connects), reconnecting after a drop. Parts of a page
 * that subscribe while the ticket is on its way share the socket it opens.
 */
async function connect(): Promise<void> {
  if (socket !== undefined || connecting) return;
  connecting = true;
  try {
    const { url } = await api.eventTicket();
    if (listeners.size === 0) return;
    const ws = new WebSocket(wsUrl(url));
    socket = ws;
    ws.onopen = () => setConnected(true);
    ws.onmessage = (message) => {
      const event = JSON.parse(String(message.data)) as DaemonEvent;
      for (const listener of listeners) listener(event);
    };
    ws.onclose = () => {
      if (socket !== ws) return; // closed by the last unsubscribe
      socket = undefined;
      setConnected(false);
      if (listeners.size > 0) retry = setTimeout(() => void connect(), 2_000);
    };
  } catch {
    if (listeners.size > 0) retry = setTimeout(() => void connect(), 2_000);
  } finally {
    connecting = false;
  }
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  void connect();
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) {
      clearTimeout(retry);
      const closing = socket;
      socket = undefined;
      closing?.close();
      setConnected(false);
    }
  };
}

export function onConnection(listener: (connected: boolean) => void): () => void {
  statusListeners.add(listener);
  listener(connected);
  return () => statusListeners.delete(listener);
}
