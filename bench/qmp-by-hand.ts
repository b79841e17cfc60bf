import { connect } from 'node:net';

/**
 * The by-hand QMP floor on a fresh QEMU started with -S: connect as soon as it listens, qmp_capabilities, cont;
 * `until: 'running'` also waits for query-status to say running. A raw socket and string matching, so the floor
 * pays nothing virtnode's QMP client does.
 */
export function qmpStartByHand(socketPath: string, until: 'cont' | 'running'): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect(socketPath);
      let buffer = '';
      let step = 0;
      const done = () => {
        socket.destroy();
        resolve();
      };
      socket.on('error', () => setTimeout(attempt, 2));
      socket.on('data', (d) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) {
          if (line.includes('"error"')) return reject(new Error(line));
          if (step === 0 && line.includes('"QMP"')) (step = 1), socket.write('{"execute":"qmp_capabilities"}\n');
          else if (step === 1 && line.includes('"return"')) (step = 2), socket.write('{"execute":"cont"}\n');
          else if (step === 2 && line.includes('"return"')) {
            if (until === 'cont') return done();
            (step = 3), socket.write('{"execute":"query-status"}\n');
          } else if (step === 3 && line.includes('"status": "running"')) return done();
        }
      });
    };
    attempt();
  });
}
