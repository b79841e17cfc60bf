import { describe, expect, it } from 'vitest';
import { parseHttpUrl, parseSha256Sums, urlFileName } from './http.ts';

const A = 'a'.repeat(64);
const B = 'B'.repeat(64);

describe('parseSha256Sums', () => {
  it('reads GNU text and binary lines and BSD lines, lower-casing the hashes', () => {
    const sums = parseSha256Sums(`${A}  debian.qcow2\n${B} *debian.raw\nSHA256 (debian.tar.xz) = ${A}\n# comment\n\nnot a line\n`);
    expect([...sums]).toEqual([
      ['debian.qcow2', A],
      ['debian.raw', 'b'.repeat(64)],
      ['debian.tar.xz', A],
    ]);
  });

  it('ignores hashes of the wrong length', () => {
    expect(parseSha256Sums(`${'a'.repeat(63)}  short.img\n${'a'.repeat(128)}  sha512.img\n`).size).toBe(0);
  });
});

describe('URLs', () => {
  it('accepts http and https and refuses the rest, naming the field', () => {
    expect(parseHttpUrl('URL', 'https://example.org/a.qcow2').href).toBe('https://example.org/a.qcow2');
    expect(() => parseHttpUrl('URL', 'file:///etc/passwd')).toThrow(/^URL: "file:\/\/\/etc\/passwd" is not an http or https URL$/);
    expect(() => parseHttpUrl('--checksums', 'nope')).toThrow(/^--checksums: "nope" is not a URL$/);
  });

  it('takes the decoded last path segment as the file name', () => {
    expect(urlFileName(new URL('https://example.org/images/my%20disk.qcow2?x=1'))).toBe('my disk.qcow2');
    expect(urlFileName(new URL('https://example.org/'))).toBe('');
  });
});
