import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { consoleTicketWhenReady, wsUrl } from '../api.ts';

/** The instance's serial console in xterm.js: the scroll-back from its console log, then live. */
export function SerialConsole({ name }: { name: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting…');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const term = new Terminal({ scrollback: 5_000, fontFamily: 'ui-monospace, monospace', fontSize: 14, cursorBlink: true });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(ref.current!);
    fit.fit();
    let ws: WebSocket | undefined;
    let disposed = false;
    const encoder = new TextEncoder();
    // The first frame is the scroll-back from the console log: it is replayed without sending the terminal's
    // answers to the queries in it (they were meant for a shell that may be gone).
    let replaying = true;
    setStatus('connecting…');
    consoleTicketWhenReady(name, 'serial', () => disposed).then(
      ({ url }) => {
        if (disposed) return;
        ws = new WebSocket(wsUrl(url));
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => setStatus('loading the scroll-back…');
        let first = true;
        ws.onmessage = (message) => {
          const data = new Uint8Array(message.data as ArrayBuffer);
          if (!first) {
            term.write(data);
            return;
          }
          first = false;
          term.write(data, () => {
            replaying = false;
            setStatus('connected');
            term.focus();
          });
        };
        ws.onclose = (event) => {
          if (!disposed) setStatus(`disconnected${event.reason ? `: ${event.reason}` : ''}`);
        };
      },
      (e: Error) => setStatus(`cannot connect: ${e.message}`),
    );
    const input = term.onData((data) => {
      if (replaying) return;
      if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    const resize = () => fit.fit();
    window.addEventListener('resize', resize);
    return () => {
      disposed = true;
      input.dispose();
      ws?.close();
      term.dispose();
      window.removeEventListener('resize', resize);
    };
  }, [name, attempt]);

  return (
    <div class="console">
      <div class="console-bar">
        <span data-testid="serial-status">{status}</span>
        {(status.startsWith('disconnected') || status.startsWith('cannot')) && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <div class="terminal" ref={ref} data-testid="serial-terminal" />
    </div>
  );
}
