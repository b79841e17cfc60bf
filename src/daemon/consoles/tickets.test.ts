import { describe, expect, it } from 'vitest';
import { ConsoleTickets, consoleScope, TICKET_TTL_MS } from './tickets.ts';

describe('console tickets', () => {
  it('are spent once, for the instance and kind they were issued for', () => {
    const tickets = new ConsoleTickets();
    const { ticket, expiresAt } = tickets.issue(consoleScope('web', 'serial'));
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    expect(tickets.redeem(ticket, consoleScope('web', 'serial'))).toBe(true);
    expect(tickets.redeem(ticket, consoleScope('web', 'serial'))).toBe(false);

    const vnc = tickets.issue(consoleScope('web', 'vnc')).ticket;
    expect(tickets.redeem(vnc, consoleScope('web', 'serial'))).toBe(false); // wrong kind, and now spent
    expect(tickets.redeem(vnc, consoleScope('web', 'vnc'))).toBe(false);
    const other = tickets.issue(consoleScope('db', 'vnc')).ticket;
    expect(tickets.redeem(other, consoleScope('web', 'vnc'))).toBe(false);
    expect(tickets.size).toBe(0);
  });

  it('expire', () => {
    let now = 1_000_000;
    const tickets = new ConsoleTickets({ now: () => now });
    const { ticket, expiresAt } = tickets.issue(consoleScope('web', 'vnc'));
    expect(Date.parse(expiresAt)).toBe(now + TICKET_TTL_MS);
    now += TICKET_TTL_MS;
    expect(tickets.redeem(ticket, consoleScope('web', 'vnc'))).toBe(false);
  });

  it('refuse anything that is not a ticket', () => {
    const tickets = new ConsoleTickets();
    tickets.issue(consoleScope('web', 'vnc'));
    for (const bad of ['', 'x', 'A'.repeat(43), 'A'.repeat(4096)]) expect(tickets.redeem(bad, consoleScope('web', 'vnc'))).toBe(false);
  });

  it('stay bounded: expired ones are purged and the oldest give way', () => {
    let now = 0;
    const tickets = new ConsoleTickets({ now: () => now, ttlMs: 10 });
    for (let i = 0; i < 50; i++) tickets.issue(consoleScope('web', 'serial'));
    now = 10;
    tickets.issue(consoleScope('web', 'serial'));
    expect(tickets.size).toBe(1);
    const first = tickets.issue(consoleScope('web', 'serial')).ticket;
    for (let i = 0; i < 1_000; i++) tickets.issue(consoleScope('web', 'serial'));
    expect(tickets.size).toBe(1_000);
    expect(tickets.redeem(first, consoleScope('web', 'serial'))).toBe(false);
  });
});
