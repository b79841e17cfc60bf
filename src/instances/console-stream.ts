import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { ConsoleEndpoints } from './driver.ts';

/**
 * A live connection to an instance's serial-style console, whatever carries it: QEMU's serial socket, or a
 * command whose stdin/stdout are the console (a container's `lxc-console`). Output also reaches the console log.
 */
export interface ConsoleStream {
  write(data: Buffer): void;
  onData(listener: (data: Buffer) => void): void;
  /** The console went away (the instance stopped); called once. */
  onClose(listener: () => void): void;
  close(): void;
}

/** undefined: the driver has no serial-style console. */
export function openConsoleStream(endpoints: ConsoleEndpoints): ConsoleStream | undefined {
  if (endpoints.serial !== undefined) {
    const socket = connect(endpoints.serial);
    return {
      write: (data) => {
        if (!socket.destroyed) socket.write(data);
      },
      onData: (listener) => socket.on('data', listener),
      onClose: (listener) => {
        let called = false;
        const once = () => {
          if (!called) (called = true), listener();
        };
        socket.on('close', once);
        socket.on('error', once);
      },
      close: () => socket.destroy(),
    };
  }
  const argv = endpoints.serialCommand;
  if (argv === undefined) return undefined;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  child.stderr.resume();
  return {
    write: (data) => {
      if (child.exitCode === null && !child.stdin.destroyed) child.stdin.write(data);
    },
    onData: (listener) => child.stdout.on('data', listener),
    onClose: (listener) => {
      let called = false;
      const once = () => {
        if (!called) (called = true), listener();
      };
      child.on('exit', once);
      child.on('error', once);
    },
    close: () => {
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}
