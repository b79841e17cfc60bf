import { describe, expect, it } from 'vitest';
import { newMac } from './ids.ts';
import { validateMac, validateName } from './names.ts';
import { statePaths, within } from './paths.ts';

describe('names', () => {
  it.each(['a', 'web1', 'db-primary', '0day', 'a'.repeat(63)])('accepts %s', (name) => {
    expect(validateName('name', name)).toBe(name);
  });
  it.each(['', 'A', 'web_1', '-web', 'web-', 'a'.repeat(64), '../x', 'a/b', 'a.b', 'a b', 'é', '.', '..'])('refuses %j', (name) => {
    expect(() => validateName('name', name)).toThrow(/name: .* is not a valid name/);
  });
  it('refuses non-strings', () => {
    expect(() => validateName('name', 42)).toThrow(/not a valid name/);
  });
});

describe('paths stay inside the state directory', () => {
  it('an instance directory is under instances/', () => {
    expect(statePaths('/s').instanceDir('web1')).toBe('/s/instances/web1');
  });
  it.each(['..', '../etc', '/etc', 'a/../../b'])('within() refuses %s', (part) => {
    expect(() => within('/s/instances', part)).toThrow(/escapes the state directory/);
  });
  it('instanceDir validates the name first', () => {
    expect(() => statePaths('/s').instanceDir('../../etc')).toThrow(/not a valid name/);
  });
});

describe('MACs', () => {
  it('are locally administered in the 52:54:00 prefix and random', () => {
    const macs = new Set(Array.from({ length: 200 }, newMac));
    for (const mac of macs) expect(validateMac('mac', mac)).toBe(mac);
    expect(macs.size).toBeGreaterThan(195);
  });
  it('refuses other prefixes', () => {
    expect(() => validateMac('--mac', '00:11:22:33:44:55')).toThrow(/--mac: "00:11:22:33:44:55" is not a valid MAC/);
  });
});
