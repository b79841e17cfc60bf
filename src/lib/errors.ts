/**
 * One error model for the whole project. Every failure a user can see is a VirtnodeError with a stable code;
 * the CLI maps codes to exit codes and the API (later) to HTTP statuses, in exactly one place each (below).
 */
export type ErrorCode =
  | 'INVALID'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'INVALID_STATE'
  | 'BUSY'
  | 'TIMEOUT'
  | 'QMP_TIMEOUT'
  | 'QMP_COMMAND'
  | 'QMP_DISCONNECTED'
  | 'QMP_PROTOCOL'
  | 'COMMAND_FAILED'
  | 'MISSING_PROGRAM'
  | 'HOST_UNSUPPORTED'
  | 'PERMISSION'
  | 'UNAUTHORIZED'
  /** The work stopped half-way because the process doing it ended (a daemon killed while an operation ran). */
  | 'INTERRUPTED'
  /** The filesystem (or quota) ran out of space: a file write, a program's output, or the state database. */
  | 'NO_SPACE'
  | 'INTERNAL';

export interface VirtnodeErrorOptions {
  /** What the user can do about it, one line. */
  hint?: string;
  /** The input field at fault, when there is one (`--memory`, `name`). */
  field?: string;
  cause?: unknown;
}

export class VirtnodeError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: VirtnodeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VirtnodeError';
    this.code = code;
    this.hint = options.hint;
    this.field = options.field;
  }
}

export function invalid(field: string, message: string, hint?: string): VirtnodeError {
  return new VirtnodeError('INVALID', `${field}: ${message}`, hint === undefined ? { field } : { field, hint });
}

export function isVirtnodeError(e: unknown, code?: ErrorCode): e is VirtnodeError {
  return e instanceof VirtnodeError && (code === undefined || e.code === code);
}

/**
 * Anything thrown becomes a VirtnodeError; unknown errors are INTERNAL and keep their cause. A full disk is
 * NO_SPACE wherever it surfaced, never INTERNAL: operations that know where they write name the directory
 * (lib/no-space.ts); this is the fallback for the rest (a database write), naming `stateDir` when given.
 */
export function toVirtnodeError(e: unknown, options: { stateDir?: string } = {}): VirtnodeError {
  const full = noSpaceCause(e);
  if (full !== undefined && !(e instanceof VirtnodeError && e.code === 'NO_SPACE' && e.hint !== undefined)) {
    const dir = options.stateDir;
    const where = typeof full.path === 'string' ? ` (writing ${full.path})` : '';
    const message = e instanceof VirtnodeError ? e.message : `no space left on the filesystem${dir === undefined ? '' : ` of ${dir}`}${where}`;
    const hint = dir === undefined ? 'free space on the filesystem of the state directory (df -h), then try again' : `free space in ${dir} (df -h ${dir}), then try again`;
    return new VirtnodeError('NO_SPACE', message, { cause: e, hint });
  }
  if (e instanceof VirtnodeError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new VirtnodeError('INTERNAL', message, { cause: e });
}

/** SQLite's primary result codes (the low byte of an extended code) and one extended code. */
const SQLITE_FULL = 13;
/** The -shm file could not grow: on Linux, its filesystem is full. */
const SQLITE_IOERR_SHMSIZE = 4874;

/**
 * The error in `e`'s cause chain that says the disk is full: ENOSPC or EDQUOT from Node's fs, SQLite's
 * "database or disk is full", or an error already marked NO_SPACE (a program that printed ENOSPC, see exec).
 */
export function noSpaceCause(e: unknown): { path?: unknown } | undefined {
  let cause = e;
  for (let depth = 0; depth < 8 && typeof cause === 'object' && cause !== null; depth++) {
    const c = cause as { code?: unknown; errcode?: unknown; path?: unknown; cause?: unknown };
    if (c.code === 'ENOSPC' || c.code === 'EDQUOT' || c.code === 'NO_SPACE') return c;
    if (typeof c.errcode === 'number' && ((c.errcode & 0xff) === SQLITE_FULL || c.errcode === SQLITE_IOERR_SHMSIZE)) return c;
    cause = c.cause;
  }
  return undefined;
}

/** CLI exit codes: stable, documented in the README. */
export const EXIT_CODE: Record<ErrorCode, number> = {
  INVALID: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  INVALID_STATE: 5,
  BUSY: 6,
  TIMEOUT: 7,
  QMP_TIMEOUT: 8,
  QMP_COMMAND: 8,
  QMP_DISCONNECTED: 8,
  QMP_PROTOCOL: 8,
  COMMAND_FAILED: 9,
  MISSING_PROGRAM: 10,
  HOST_UNSUPPORTED: 11,
  PERMISSION: 12,
  UNAUTHORIZED: 13,
  INTERRUPTED: 14,
  NO_SPACE: 15,
  INTERNAL: 1,
};

/** HTTP statuses for the REST API. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_STATE: 409,
  BUSY: 423,
  TIMEOUT: 504,
  QMP_TIMEOUT: 504,
  QMP_COMMAND: 502,
  QMP_DISCONNECTED: 502,
  QMP_PROTOCOL: 502,
  COMMAND_FAILED: 500,
  MISSING_PROGRAM: 500,
  HOST_UNSUPPORTED: 501,
  PERMISSION: 403,
  UNAUTHORIZED: 401,
  INTERRUPTED: 500,
  NO_SPACE: 507,
  INTERNAL: 500,
};
