import { describe, expect, it } from 'vitest';
import { statePaths } from '../lib/paths.ts';
import type { Instance } from './model.ts';
import { SSH_MUX_SOCKET, sshArgv } from './ssh.ts';

function instance(name: string): Instance {
  return { name, state: 'running', spec: { ssh: { user: 'virtnode', identityFile: '/k/id_ed25519', guestPort: 22, hostPort: 2222 } } } as unknown as Instance;
}

describe('sshArgv', () => {
  it('checks the host key strictly and shares one connection per instance through a control socket in its directory', () => {
    const paths = statePaths('/var/lib/virtnode');
    const argv = sshArgv(paths, instance('web1'), ['true'], { tty: false });
    expect(argv.join(' ')).toContain('-o StrictHostKeyChecking=yes');
    expect(argv.join(' ')).toContain(`-o ControlMaster=auto -o ControlPath=/var/lib/virtnode/instances/web1/${SSH_MUX_SOCKET} -o ControlPersist=60`);
    expect(argv.slice(-2)).toEqual(['--', 'true']);
  });

  it('logs in on its own when the control socket path would be too long for a UNIX socket', () => {
    const paths = statePaths(`/tmp/${'d'.repeat(60)}`);
    const argv = sshArgv(paths, instance('a-rather-long-instance-name'), ['true']);
    expect(argv.join(' ')).not.toContain('ControlPath');
    expect(argv.join(' ')).toContain('-o StrictHostKeyChecking=yes');
  });
});
