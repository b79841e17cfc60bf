import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { USER_DATA_AFTER_FIRST_BOOT, firstBootMarker } from './http-seed.ts';
import { isFirstBootDone, seedFileFor } from './metadata-responder.ts';

describe('metadata responder', () => {
  it('maps only the NoCloud file names', () => {
    expect(seedFileFor('GET /meta-data HTTP/1.1')).toBe('meta-data');
    expect(seedFileFor('GET //user-data?x=1 HTTP/1.0')).toBe('user-data');
    expect(seedFileFor('GET /../../etc/shadow HTTP/1.1')).toBeUndefined();
    expect(seedFileFor('GET /ssh/ssh_host_ed25519_key HTTP/1.1')).toBeUndefined();
    expect(seedFileFor('POST /meta-data HTTP/1.1')).toBeUndefined();
    expect(isFirstBootDone('POST /first-boot-done HTTP/1.1')).toBe(true);
    expect(isFirstBootDone('GET /first-boot-done HTTP/1.1')).toBe(false);
    expect(isFirstBootDone('POST /first-boot-done/../x HTTP/1.1')).toBe(false);
  });

  it('answers one request on stdin/stdout, as QEMU runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-md-'));
    try {
      writeFileSync(join(dir, 'meta-data'), 'instance-id: i-1\n');
      const askRaw = (request: string) =>
        new Promise<string>((resolve) => {
          const child = spawn(process.execPath, [new URL('./metadata-responder.ts', import.meta.url).pathname, dir]);
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.on('close', () => resolve(out));
          child.stdin.write(request);
        });
      const ask = (path: string) => askRaw(`GET ${path} HTTP/1.1\r\nHost: 10.0.2.100\r\n\r\n`);
      expect(await ask('/meta-data')).toBe('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 17\r\nConnection: close\r\n\r\ninstance-id: i-1\n');
      expect(await ask('/vendor-data')).toMatch(/^HTTP\/1.0 200 OK\r\n.*Content-Length: 0\r\n/s);
      expect(await ask('/etc/passwd')).toMatch(/^HTTP\/1.0 404 Not Found/);

      // First boot: the whole user-data. Once the guest phones home, only the copy without secrets.
      writeFileSync(join(dir, 'user-data'), '#cloud-config\nssh_keys: {ed25519_private: SECRET}\n');
      writeFileSync(join(dir, USER_DATA_AFTER_FIRST_BOOT), '#cloud-config\nbootcmd: [true]\n');
      expect(await ask('/user-data')).toContain('SECRET');
      const phoned = await askRaw('POST /first-boot-done HTTP/1.1\r\nHost: 10.0.2.100\r\nContent-Length: 15\r\n\r\ninstance_id=i-1');
      expect(phoned).toMatch(/^HTTP\/1.0 200 OK\r\n/);
      expect(existsSync(firstBootMarker(dir))).toBe(true);
      const later = await ask('/user-data');
      expect(later).not.toContain('SECRET');
      expect(later).toMatch(/\r\n\r\n#cloud-config\nbootcmd: \[true\]\n$/);
      expect(await ask('/meta-data')).toMatch(/instance-id: i-1\n$/);

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
