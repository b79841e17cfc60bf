import { describe, expect, it } from 'vitest';
import { noSpaceCause, toVirtnodeError, VirtnodeError } from './errors.ts';
import { named, NoSpaceError, reportsNoSpace } from './no-space.ts';

const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/state/images/x' });
/** What node:sqlite throws for SQLITE_FULL and for a -shm file that cannot grow. */
const sqliteFull = Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR', errcode: 13 });
const shmSize = Object.assign(new Error('disk I/O error'), { code: 'ERR_SQLITE_ERROR', errcode: 4874 });
const ioError = Object.assign(new Error('disk I/O error'), { code: 'ERR_SQLITE_ERROR', errcode: 10 });

describe('a full disk, recognised and named', () => {
  it('finds ENOSPC, EDQUOT, SQLITE_FULL and the -shm growth failure anywhere in the cause chain, nothing else', () => {
    expect(noSpaceCause(enospc)).toBe(enospc);
    expect(noSpaceCause(Object.assign(new Error('quota'), { code: 'EDQUOT' }))).toBeDefined();
    expect(noSpaceCause(sqliteFull)).toBe(sqliteFull);
    expect(noSpaceCause(shmSize)).toBe(shmSize);
    expect(noSpaceCause(new VirtnodeError('INTERNAL', 'wrapped', { cause: new Error('again', { cause: enospc }) }))).toBe(enospc);
    expect(noSpaceCause(ioError)).toBeUndefined();
    expect(noSpaceCause(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBeUndefined();
    expect(noSpaceCause('a string')).toBeUndefined();
  });

  it('reads strerror(ENOSPC) and strerror(EDQUOT) in what a program printed', () => {
    expect(reportsNoSpace('qemu-img: error while writing at byte 48234496: No space left on device')).toBe(true);
    expect(reportsNoSpace('Disk quota exceeded')).toBe(true);
    expect(reportsNoSpace('qemu-img: Could not open: Permission denied')).toBe(false);
  });

  it('names the operation and the directory once, keeping the innermost name', () => {
    const e = named(enospc, 'pull image http://x/a.qcow2', '/state/images') as NoSpaceError;
    expect(e).toBeInstanceOf(NoSpaceError);
    expect(e).toMatchObject({ code: 'NO_SPACE', message: 'pull image http://x/a.qcow2: no space left on the filesystem of /state/images', hint: 'free space in /state/images (df -h /state/images), then try again' });
    expect(named(e, 'an outer operation', '/state')).toBe(e);
    const other = new VirtnodeError('CONFLICT', 'taken');
    expect(named(other, 'x', '/')).toBe(other);
  });

  it('is NO_SPACE at the edge even when no operation named it, never INTERNAL', () => {
    expect(toVirtnodeError(sqliteFull, { stateDir: '/state' })).toMatchObject({ code: 'NO_SPACE', message: 'no space left on the filesystem of /state', hint: 'free space in /state (df -h /state), then try again' });
    expect(toVirtnodeError(enospc)).toMatchObject({ code: 'NO_SPACE', message: 'no space left on the filesystem (writing /state/images/x)' });
    expect(toVirtnodeError(ioError)).toMatchObject({ code: 'INTERNAL' });
    const namedOne = named(enospc, 'create volume v', '/pool') as NoSpaceError;
    expect(toVirtnodeError(namedOne, { stateDir: '/state' })).toBe(namedOne);
  });
});
