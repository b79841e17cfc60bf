import { connect } from 'node:net';
import type { WebSocket } from 'ws';

/** A viewer that lets this much output pile up unsent is too slow to keep: the socket is paused until it drains. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const LOW_WATER_BYTES = 512 * 1024;
const DRAIN_CHECK_MS = 20;

/**
 * Bridges one WebSocket (binary frames, the websockify protocol noVNC speaks) to QEMU's VNC server on its UNIX
 * socket. Each viewer gets its own VNC connection; QEMU's VNC server serves several at once (noVNC asks for a
 * shared session), so viewers do not lock each other out. No VNC port is ever opened on TCP.
 */
export function bridgeVnc(ws: WebSocket, socketPath: string): void {
  const socket = connect(socketPath);
  let closed = false;
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    socket.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
  };
  let drainTimer: NodeJS.Timeout | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true });
    if (ws.bufferedAmount > HIGH_WATER_BYTES && drainTimer === undefined) {
      socket.pause();
      drainTimer = setInterval(() => {
        if (ws.bufferedAmount > LOW_WATER_BYTES && ws.readyState === ws.OPEN) return;
        clearInterval(drainTimer);
        drainTimer = undefined;
        socket.resume();
      }, DRAIN_CHECK_MS);
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    clearInterval(drainTimer);
    close(1011, 'the graphical console closed (the instance is no longer running)');
  });
  // binaryType is ws's default 'nodebuffer': every message is one Buffer.
  ws.on('message', (data: Buffer) => {
    if (!socket.destroyed) socket.write(data);
  });
  ws.on('close', () => close(1000, ''));
  ws.on('error', () => close(1011, 'WebSocket error'));
}
