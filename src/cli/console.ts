import { createReadStream, existsSync, statSync, watch } from 'node:fs';
import { connect } from 'node:net';
import { VirtnodeError } from '../lib/errors.ts';
import type { InstanceService } from '../instances/service.ts';
import { runtimePaths } from '../instances/runtime.ts';

const DETACH_BYTE = 0x1d; // Ctrl-]
/** With piped input (`echo cmd | virtnode console vm`): detach once the guest has been quiet this long. */
const PIPED_IDLE_DETACH_MS = 1_500;

/** Interactive serial console: raw terminal in, guest output out, Ctrl-] detaches. */
export async function attachConsole(service: InstanceService, name: string): Promise<void> {
  const instance = await service.get(name);
  if (instance.state !== 'running' && instance.state !== 'paused') {
    throw new VirtnodeError('INVALID_STATE', `instance ${name} is ${instance.state}: its console exists only while it runs`, {
      hint: `start it with \`virtnode start ${name}\`, or read the past output with \`virtnode logs ${name}\``,
    });
  }
  const socket = connect(runtimePaths(service.paths.instanceDir(name)).serial);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', (e) => reject(new VirtnodeError('COMMAND_FAILED', `cannot open the console of ${name}: ${e.message}`, { cause: e })));
  });
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  process.stderr.write(`Connected to the console of ${name}. Press Ctrl-] to detach.\n`);
  if (tty) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (tty) stdin.setRawMode(false);
      stdin.pause();
      socket.destroy();
      resolve();
    };
    stdin.on('data', (chunk: Buffer) => {
      const detach = chunk.indexOf(DETACH_BYTE);
      if (detach >= 0) {
        if (detach > 0) socket.write(chunk.subarray(0, detach));
        finish();
        return;
      }
      socket.write(chunk);
    });
    let idle: NodeJS.Timeout | undefined;
    let inputEnded = false;
    const armIdle = () => {
      clearTimeout(idle);
      if (inputEnded) idle = setTimeout(finish, PIPED_IDLE_DETACH_MS);
    };
    stdin.on('end', () => {
      inputEnded = true;
      armIdle();
    });
    socket.on('data', (chunk) => {
      process.stdout.write(chunk);
      armIdle();
    });
    socket.on('close', () => {
      clearTimeout(idle);
      finish();
    });
    socket.on('error', finish);
    stdin.resume();
  });
  process.stderr.write(`\nDetached from ${name}.\n`);
}

/** Prints the persistent console log; with `follow`, keeps printing what the guest writes next. */
export async function printConsoleLog(service: InstanceService, name: string, options: { follow: boolean }): Promise<void> {
  await service.get(name); // NOT_FOUND for unknown instances
  const path = runtimePaths(service.paths.instanceDir(name)).serialLog;
  if (!existsSync(path)) {
    if (!options.follow) return;
  }
  let offset = 0;
  const pump = async () => {
    if (!existsSync(path)) return;
    const size = statSync(path).size;
    if (size < offset) offset = 0; // the log was truncated
    if (size === offset) return;
    await new Promise<void>((resolve, reject) => {
      const stream = createReadStream(path, { start: offset, end: size - 1 });
      stream.on('data', (chunk) => process.stdout.write(chunk));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    offset = size;
  };
  await pump();
  if (!options.follow) return;
  const dir = runtimePaths(service.paths.instanceDir(name)).serialLog.replace(/\/[^/]+$/, '');
  let busy = Promise.resolve();
  const watcher = watch(dir, () => {
    busy = busy.then(pump, pump);
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => {
      watcher.close();
      resolve();
    });
  });
}
