import RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'preact/hooks';
import { consoleTicketWhenReady, wsUrl } from '../api.ts';

/** The graphical console in noVNC: a shared session (other viewers stay connected), over a ticketed WebSocket. */
export function VncConsole({ name }: { name: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<RFB | undefined>(undefined);
  const [status, setStatus] = useState('connecting…');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let disposed = false;
    setStatus('connecting…');
    consoleTicketWhenReady(name, 'vnc', () => disposed).then(
      ({ url }) => {
        if (disposed) return;
        const rfb = new RFB(ref.current!, wsUrl(url), { shared: true });
        rfb.scaleViewport = true;
        rfb.background = '#111';
        rfb.addEventListener('connect', () => setStatus('connected'));
        rfb.addEventListener('disconnect', (event) => {
          if (!disposed) setStatus((event as CustomEvent<{ clean: boolean }>).detail.clean ? 'disconnected' : 'connection lost');
        });
        rfbRef.current = rfb;
      },
      (e: Error) => setStatus(`cannot connect: ${e.message}`),
    );
    return () => {
      disposed = true;
      rfbRef.current?.disconnect();
      rfbRef.current = undefined;
    };
  }, [name, attempt]);

  return (
    <div class="console">
      <div class="console-bar">
        <span data-testid="vnc-status">{status}</span>
        <button type="button" disabled={status !== 'connected'} onClick={() => rfbRef.current?.sendCtrlAltDel()}>
          Send Ctrl-Alt-Del
        </button>
        {status !== 'connected' && status !== 'connecting…' && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <div class="screen" ref={ref} data-testid="vnc-screen" />
    </div>
  );
}
