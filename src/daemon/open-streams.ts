/** How often streams are held against the token table: revoking with the CLI writes only the database. */
export const STREAM_CHECK_INTERVAL_MS = 2_000;

/** The WebSocket close code a client sees when the token its stream was opened with ends. */
export const TOKEN_ENDED_CLOSE_CODE = 4001;

/**
 * The long-lived streams (WebSockets, followed logs) and who opened them (`token:NAME`, or `socket`): when a
 * token is revoked or expires, what it opened is closed too, not only its next request refused.
 */
export class OpenStreams {
  private readonly byOwner = new Map<string, Set<() => void>>();

  /** Registers a stream; returns what to call when it ends on its own. */
  add(owner: string | undefined, close: () => void): () => void {
    if (owner === undefined || !owner.startsWith('token:')) return () => {};
    const set = this.byOwner.get(owner) ?? new Set();
    this.byOwner.set(owner, set);
    set.add(close);
    return () => {
      set.delete(close);
      if (set.size === 0) this.byOwner.delete(owner);
    };
  }

  /** Closes every stream whose token is no longer valid; returns how many. */
  closeEnded(tokenValid: (name: string) => boolean): number {
    let closed = 0;
    for (const [owner, set] of this.byOwner) {
      if (tokenValid(owner.slice('token:'.length))) continue;
      this.byOwner.delete(owner);
      for (const close of set) {
        close();
        closed++;
      }
    }
    return closed;
  }
}
