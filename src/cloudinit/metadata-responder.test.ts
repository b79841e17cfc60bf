import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seedFileFor } from './metadata-responder.ts';

describe('metadata responder', () => {
  it('maps only the NoCloud file names', () => {
    expect(seedFileFor('GET /meta-data HTTP/1.1')).toBe('meta-data');
    expect(seedFileFor('GET //user-data?x=1 HTTP/1.0')).toBe('user-data');
    expect(seedFileFor('GET /../../etc/shadow HTTP/1.1')).toBeUndefined();
    expect(seedFileFor('GET /ssh/ssh_host_ed25519_key HTTP/1.1')).toBeUndefined();
    expect(seedFileFor('POST /meta-data HTTP/1.1')).toBeUndefined();
  });

  it('answers one request on stdin/stdout, as QEMU runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-md-'));
    try {
      writeFileSync(join(dir, 'meta-data'), 'instance-id: i-1\n');
      const ask = (path: string) =>
        new Promise<string>((resolve) => {
          const child = spawn(process.execPath, [new URL('./metadata-responder.ts', import.meta.url).pathname, dir]);
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.on('close', () => resolve(out));
          child.stdin.write(`GET ${path} HTTP/1.1\r\nHost: 10.0.2.100\r\n\r\n`);
        });
      expect(await ask('/meta-data')).toBe('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 17\r\nConnection: close\r\n\r\ninstance-id: i-1\n');
      expect(await ask('/vendor-data')).toMatch(/^HTTP\/1.0 200 OK\r\n.*Content-Length: 0\r\n/s);
      expect(await ask('/etc/passwd')).toMatch(/^HTTP\/1.0 404 Not Found/);

      // A guest that connects and never sends a whole request: the process ends on its own.
      const started = Date.now();
      const stalled = await new Promise<{ out: string; code: number | null }>((resolve) => {
        const child = spawn(process.execPath, [new URL('./metadata-responder.ts', import.meta.url).pathname, dir], { env: { ...process.env, VIRTNODE_RESPONDER_TIMEOUT_MS: '500' } });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', (code) => resolve({ out, code }));
        child.stdin.write('GET /meta-data HTTP/1.1\r\n'); // and nothing more, stdin left open
      });
      expect(stalled).toEqual({ out: expect.stringMatching(/^HTTP\/1.0 408 Request Timeout\r\n/), code: 0 });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
