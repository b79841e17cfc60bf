import { randomBytes } from 'node:crypto';

export type ConsoleKind = 'serial' | 'vnc';
export const CONSOLE_KINDS: readonly ConsoleKind[] = ['serial', 'vnc'];

/** Long enough to open the WebSocket right after asking; short enough that a leaked URL is useless. */
export const TICKET_TTL_MS = 30_000;
/** A bound on outstanding tickets, so a client asking in a loop cannot grow the daemon's memory. */
const MAX_OUTSTANDING = 1_000;

export interface ConsoleTicket {
  ticket: string;
  /** ISO 8601. */
  expiresAt: string;
}

interface Entry {
  scope: string;
  /** Who asked for it (`token:NAME`, `socket`): the stream it opens acts for them. */
  owner: string | undefined;
  expiresAtMs: number;
}

/** What a ticket opens: one console of one instance, or the events stream. */
export function consoleScope(instance: string, kind: ConsoleKind): string {
  return `${kind}:${instance}`;
}
export const EVENTS_SCOPE = 'events';

/**
 * Short-lived, single-use tickets that authorize one WebSocket: a console of one kind for one instance, or the
 * events stream. A browser
 * cannot put an Authorization header on a WebSocket, and a bearer token in a URL ends up in logs and history; a
 * ticket asked for with the token (POST) and spent on the upgrade is worth nothing afterwards.
 */
export class ConsoleTickets {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: { ttlMs?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? TICKET_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  issue(scope: string, owner?: string): ConsoleTicket {
    this.purgeExpired();
    if (this.entries.size >= MAX_OUTSTANDING) {
      // The oldest ticket goes first (Map keeps insertion order).
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    const ticket = randomBytes(32).toString('base64url');
    const expiresAtMs = this.now() + this.ttlMs;
    this.entries.set(ticket, { scope, owner, expiresAtMs });
    return { ticket, expiresAt: new Date(expiresAtMs).toISOString() };
  }

  /** Spends a ticket: true only once, only before it expires, only for the scope it was issued for. */
  redeem(ticket: string, scope: string): boolean {
    return this.spend(ticket, scope) !== undefined;
  }

  /** Spends a ticket as `redeem` does; returns who asked for it (`anonymous` if nobody), or undefined if refused. */
  spend(ticket: string, scope: string): { owner: string | undefined } | undefined {
    if (typeof ticket !== 'string' || ticket.length !== 43) return undefined;
    // 256 random bits: a hash lookup leaks nothing useful about tickets that cannot be guessed anyway.
    const entry = this.entries.get(ticket);
    if (entry === undefined) return undefined;
    this.entries.delete(ticket);
    return entry.scope === scope && this.now() < entry.expiresAtMs ? { owner: entry.owner } : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private purgeExpired(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAtMs <= now) this.entries.delete(key);
  }
}
