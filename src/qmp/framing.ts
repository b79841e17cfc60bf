/**
 * Splits a byte stream into newline-delimited JSON messages (QMP and the guest agent both frame this way). A
 * message may arrive in pieces or several at once; CR before LF is tolerated.
 */
export class LineFramer {
  private buffer = '';

  /** Feeds a chunk; returns the complete lines it finished (without line ends, empty lines dropped). */
  push(chunk: string): string[] {
    this.buffer += chunk;
    const parts = this.buffer.split('\n');
    this.buffer = parts.pop() ?? '';
    return parts.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  }

  get pending(): string {
    return this.buffer;
  }
}
