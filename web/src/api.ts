/**
 * The daemon's REST API as the browser sees it (same origin): the one API client (src/client/contract-client.ts)
 * over `fetch`, with the types of the API's schemas.
 */
import { API } from '../../src/api/contracts/index.ts';
import type { EndpointSpec, Input } from '../../src/api/endpoint.ts';
export { API } from '../../src/api/contracts/index.ts';
import type { InstanceView, OperationView as Operation, TicketView as Ticket } from '../../src/api/schemas.ts';
import { remoteApi, startOperation, type Transport } from '../../src/client/contract-client.ts';
import type { RetryPolicy } from './lib/reloader.ts';

export type { TemplateView as Template, NicView as Nic, PortForwardView as PortForward, NetworkView as Network, NetworkLeaseView as Lease, PoolApiView as Pool, VolumeApiView as Volume, ImageView as Image, InstanceView as Instance, OperationView as Operation, SnapshotApiView as Snapshot, TicketView as Ticket } from '../../src/api/schemas.ts';
export type InstanceState = InstanceView['state'];

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly hint: string | undefined;
  constructor(status: number, code: string, message: string, hint?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }
}

const TOKEN_KEY = 'virtnode.token';

/** The bearer token lives in this tab's session storage only (gone when the tab closes). */
export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/**
 * A login link from `virtnode ui` (`/ui/#login=CODE`): the code is traded, once, for a session token of this tab,
 * and taken out of the address bar and history. Resolves to an error message if the trade fails.
 */
export async function redeemLoginLink(): Promise<string | undefined> {
  const match = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (match === null) return undefined;
  history.replaceState(null, '', `${location.pathname}#/`);
  try {
    const session = await request<{ token: string }>('POST', '/ui-logins/redeem', { code: match[1] });
    token.set(session.token);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
/** Called when the daemon answers 401: the page shows the login form. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

/**
 * How often a request that got no answer at all is sent again, and the pause before each. A browser on the
 * daemon's host loses requests in flight whenever the host's links change (Chromium: net::ERR_NETWORK_CHANGED),
 * which is what making a network, starting an instance or attaching a NIC does.
 */
const RESENDS = 2;
const RESEND_PAUSE_MS = 250;

/** A fresh key for one change: sent again with it, the change is done once (the daemon replays its answer). */
function idempotencyKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const bearer = token.get();
  if (bearer !== null) headers['authorization'] = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['idempotency-key'] = idempotencyKey();
  const init: RequestInit = { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) };
  let response: Response;
  for (let attempt = 1; ; attempt++) {
    try {
      response = await fetch(path, init);
      break;
    } catch (e) {
      if (attempt > RESENDS) throw e;
      await new Promise((resolve) => setTimeout(resolve, RESEND_PAUSE_MS * attempt));
    }
  }
  const text = await response.text();
  const data: unknown = text === '' ? undefined : JSON.parse(text);
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string; hint?: string } } | undefined)?.error;
    if (response.status === 401) for (const listener of unauthorizedListeners) listener();
    throw new ApiError(response.status, error?.code ?? 'HTTP', error?.message ?? `${method} ${path}: HTTP ${response.status}`, error?.hint);
  }
  return data as T;
}

/** A load that failed on the way (no answer, a 5xx, too many requests) is worth another try; a 4xx answer is final. */
export const LOAD_RETRY: RetryPolicy = {
  retryable: (e) => !(e instanceof ApiError) || e.status >= 500 || e.status === 429,
  firstPauseMs: 1_000,
  maxPauseMs: 30_000,
};

const transport: Transport = { request: (method, path, body) => request<unknown>(method, path, body) };

/** The API's calls (long work is followed to its end). */
export const client = remoteApi(transport);

/** Starts long work and answers with its operation at once; the page follows it through the events stream. */
export function start<E extends EndpointSpec>(spec: E, input: Input<E>): Promise<Operation> {
  return startOperation(transport, spec, input as Record<string, unknown>);
}

export type LaunchInput = Input<typeof API.instances.launch>;
export type CreateInput = Input<typeof API.instances.create>;
export type SnapshotInput = Input<typeof API.snapshots.create>;

export const api = {
  instances: () => client.instances.list(),
  instance: (name: string) => client.instances.get({ name }),
  images: () => client.images.list(),
  create: (body: CreateInput) => client.instances.create(body),
  /** Starts the launch and answers with its operation; the page follows the instance through the events. */
  launch: (body: LaunchInput): Promise<Operation> => startOperation(transport, API.instances.launch, body),
  /** start/pause/resume answer when done; stop/restart are started and answer with their operation. */
  action: (name: string, action: 'start' | 'stop' | 'restart' | 'pause' | 'resume', body: { force?: boolean } = {}): Promise<unknown> =>
    action === 'stop' || action === 'restart' ? startOperation(transport, API.instances[action], { name, ...body }) : client.instances[action]({ name }),
  remove: (name: string, force: boolean) => client.instances.delete({ name, force }),
  consoleTicket: (name: string, kind: 'serial' | 'vnc') => request<Ticket>('POST', `/instances/${encodeURIComponent(name)}/console-tickets`, { kind }),
  eventTicket: () => request<Ticket>('POST', '/events/tickets'),
  snapshots: (instance: string) => client.snapshots.list({ instance }),
  /** create, revert and delete are operations, followed to their end: the outcome has notes on what happened. */
  createSnapshot: (body: SnapshotInput) => client.snapshots.create(body),
  revertSnapshot: (instance: string, snap: string) => client.snapshots.revert({ instance, snap }),
  deleteSnapshot: (instance: string, snap: string) => client.snapshots.delete({ instance, snap }),
  metrics: async (): Promise<string> => {
    const headers: Record<string, string> = {};
    const bearer = token.get();
    if (bearer !== null) headers['authorization'] = `Bearer ${bearer}`;
    const response = await fetch('/metrics', { headers });
    if (!response.ok) throw new ApiError(response.status, 'HTTP', `/metrics: HTTP ${response.status}`);
    return response.text();
  },
};

/**
 * A console ticket once the daemon itself says the instance runs. The page's state comes from events and may be
 * ahead of or behind the daemon's record around a start or restart; asking the record first (GET, always 200)
 * keeps the browser from a 409 that would be retried anyway. A 409 can still happen if the instance stops in
 * between: it is retried the same way.
 */
export async function consoleTicketWhenReady(name: string, kind: 'serial' | 'vnc', gaveUp: () => boolean, attempts = 20): Promise<Ticket> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { state } = await api.instance(name);
      if (state === 'running' || state === 'paused') return await api.consoleTicket(name, kind);
      if (attempt >= attempts || gaveUp()) throw new ApiError(409, 'INVALID_STATE', `instance ${name} is ${state}: its consoles exist only while it runs`);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409 || attempt >= attempts || gaveUp()) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** ws:// or wss:// for a path on this origin. */
export function wsUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}`;
}
