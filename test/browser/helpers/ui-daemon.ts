import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPort } from '../../../src/lib/ports.ts';

export interface UiDaemon {
  url: string;
  token: string;
  stop: () => Promise<void>;
}

/** Starts the daemon serving the web UI on loopback TCP (a token required) for one state directory. */
export async function startUiDaemon(home: string): Promise<UiDaemon> {
  const port = await freeLoopbackPort();
  const token = randomBytes(24).toString('base64url');
  const script = fileURLToPath(new URL('./stand-in-daemon.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, String(port), token], {
    env: { ...process.env, VIRTNODE_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start in 20 s:\n${output}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const match = /listening (\S+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the daemon exited with ${code}:\n${output}`));
    });
  });
  return {
    url,
    token,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
