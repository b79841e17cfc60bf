import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicAddressesOnly } from './address-guard.ts';
import { fetchChecksum, guardedFetch, parseHttpUrl, parseSha256Sums, urlFileName } from './http.ts';

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

describe('pulls that a client over TCP asks for', () => {
  let server: Server;
  let base = '';
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/hop') return res.writeHead(302, { location: `http://localhost:${(server.address() as AddressInfo).port}/inside` }).end();
      if (req.url === '/endless') {
        // A "checksums file" that never ends: it must be cut, not buffered.
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const write = () => {
          while (res.write(chunk)) if (res.writableLength > 1 << 20) break;
        };
        res.on('drain', write);
        return write();
      }
      res.end('inside');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('refuses the host itself, its link and private networks, by address or by name, before any request', async () => {
    for (const url of [`${base}/x.qcow2`, 'http://169.254.169.254/latest/meta-data', 'http://[::1]/x', 'http://10.1.2.3/x', 'http://[::ffff:192.168.1.1]/x', 'http://localhost/x']) {
      await expect(publicAddressesOnly(new URL(url)), url).rejects.toThrow(/an address of this host or of a private network/);
    }
    await expect(publicAddressesOnly(new URL('http://93.184.215.14/x'))).resolves.toBeUndefined();
    expect(hits).toEqual([]);
  });

  it('checks every redirect before following it', async () => {
    const onlyNumeric = async (url: URL) => {
      if (url.hostname === 'localhost') throw new Error(`refused ${url.href}`);
    };
    await expect(guardedFetch(`${base}/hop`, {}, onlyNumeric)).rejects.toThrow(/refused http:\/\/localhost:\d+\/inside/);
    expect(hits).toEqual(['/hop']); // the target of the redirect was never asked
    expect(await (await guardedFetch(`${base}/hop`, {}, undefined)).text()).toBe('inside'); // without a guard fetch follows it
  });

  it('reads a checksums file only up to its cap', async () => {
    await expect(fetchChecksum(`${base}/endless`, 'x.qcow2')).rejects.toThrow(/is too large for a SHA256SUMS file/);
  });
});
