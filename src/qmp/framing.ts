/**
 * Splits a byte stream into newline-delimited JSON messages (QMP and the guest agent both frame this way). A
 * message may arrive in pieces or several at once; CR before LF is tolerated. Works on bytes, so a multi-byte
 * UTF-8 character split across chunks is decoded whole, and a 0xFF byte can be found before any decoding.
 */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

export class LineFramer {
  private parts: Buffer[] = [];
  private size = 0;
  private readonly maxLineBytes: number;

  constructor(options: { maxLineBytes?: number } = {}) {
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
  }

  /**
   * Feeds a chunk; returns the complete lines it finished (UTF-8 decoded, without line ends, blank lines
   * dropped). Returns undefined when the unfinished line grows past the limit (the peer is not speaking QMP).
   */
  push(chunk: Buffer | string): string[] | undefined {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const lines: string[] = [];
    let start = 0;
    for (let nl = bytes.indexOf(0x0a); nl >= 0; nl = bytes.indexOf(0x0a, start)) {
      this.parts.push(bytes.subarray(start, nl));
      const line = Buffer.concat(this.parts).toString('utf8').replace(/\r$/, '');
      this.parts = [];
      this.size = 0;
      if (line.trim() !== '') lines.push(line);
      start = nl + 1;
    }
    if (start < bytes.length) {
      this.parts.push(bytes.subarray(start));
      this.size += bytes.length - start;
      if (this.size > this.maxLineBytes) return undefined;
    }
    return lines;
  }

  /** Drops an unfinished line (after a resync: whatever came before is stale). */
  reset(): void {
    this.parts = [];
    this.size = 0;
  }

  /** Bytes of the unfinished line held so far. */
  get pendingBytes(): number {
    return this.size;
  }
}
