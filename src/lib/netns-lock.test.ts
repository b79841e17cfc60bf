import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { acquireNetnsLock } from './netns-lock.ts';

describe('acquireNetnsLock', () => {
  it('lets one holder in at a time; the next gets in once it is released', async () => {
    const name = `test-${randomUUID()}`;
    const release = await acquireNetnsLock(name, 'first', 1_000);
    const order: string[] = [];
    const second = acquireNetnsLock(name, 'second', 5_000).then((r) => {
      order.push('second');
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    order.push('first done');
    await release();
    await (await second)();
    expect(order).toEqual(['first done', 'second']);
  });

  it('is BUSY, naming what waited, when the holder keeps it past the wait', async () => {
    const name = `test-${randomUUID()}`;
    const release = await acquireNetnsLock(name, 'first', 1_000);
    await expect(acquireNetnsLock(name, 'network create', 200)).rejects.toMatchObject({ code: 'BUSY', message: expect.stringMatching(/^network create: /) });
    await release();
  });
});
