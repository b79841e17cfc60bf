/** The states in which a VM moves offline between hosts (no QEMU runs it). */
export const OFFLINE_MOVABLE_STATES: ReadonlySet<string> = new Set(['stopped', 'defined', 'crashed']);
