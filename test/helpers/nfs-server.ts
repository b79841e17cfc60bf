import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NfsServer {
  /** The "storage host" network namespace. */
  netns: string;
  /** Its address, reachable from the test's namespace through the veth pair. */
  address: string;
  /** The exported directory (on this machine's filesystem; its path is also the NFSv3 export path). */
  exportPath: string;
  /** `SERVER:/export`, as `virtnode pool create --type nfs --source` takes it. */
  source: string;
  /** ganesha.nfsd's log (for failure messages). */
  log: () => string;
  /** Stops ganesha and rpcbind, removes the namespaces, the veth and the directories; safe to call twice. */
  stop: () => Promise<void>;
}

const GANESHA_START_MS = 20_000;

function ganeshaConfig(exportPath: string, stateDir: string): string {
  return [
    'NFS_CORE_PARAM { Protocols = 3, 4; NFS_Port = 2049; Bind_addr = 0.0.0.0; }',
    `NFSV4 { RecoveryRoot = ${stateDir}; Graceless = true; }`,
    'EXPORT {',
    `  Export_Id = 1; Path = ${exportPath}; Pseudo = ${exportPath};`,
    '  Access_Type = RW; Squash = No_Root_Squash; Protocols = 3, 4; Transports = TCP; SecType = sys;',
    '  FSAL { Name = VFS; }',
    '}',
    'LOG { Default_Log_Level = WARN; }',
    '',
  ].join('\n');
}

async function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1_000, () => done(false));
  });
}

async function exited(child: ChildProcess | undefined, waitMs: number): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, waitMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * A real NFS server for tests: nfs-ganesha 4.3 (VFS FSAL) and rpcbind in a "storage host" network namespace of
 * their own, joined to the caller's namespace by a veth pair, exporting a fresh temporary directory over NFSv3/v4.
 * Both daemons run in a private mount namespace with their own /run, so their rpcbind socket and pid files never
 * meet another test's. Run from inside the test's private netns (scripts/test.sh); addresses are per caller.
 */
export async function startNfsServer(options: { hostAddress: string; serverAddress: string; prefix?: number }): Promise<NfsServer> {
  const prefix = options.prefix ?? 24;
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const netns = `vnnfs-${id}`;
  const hostVeth = `vnnf${id}`.slice(0, 15);
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-nfs-'));
  const exportPath = join(dir, 'export');
  const stateDir = join(dir, 'state');
  const mountNs = join(dir, 'mntns');
  const logFile = join(dir, 'ganesha.log');
  let rpcbind: ChildProcess | undefined;
  let ganesha: ChildProcess | undefined;
  let stopped = false;
  const quiet = (argv: string[]) => {
    try {
      execFileSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
  };
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    ganesha?.kill('SIGTERM');
    await exited(ganesha, 5_000);
    rpcbind?.kill('SIGTERM');
    await exited(rpcbind, 5_000);
    quiet(['umount', mountNs]);
    quiet(['ip', 'link', 'del', hostVeth]);
    quiet(['ip', 'netns', 'del', netns]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync(exportPath);
    mkdirSync(stateDir);
    const conf = join(dir, 'ganesha.conf');
    writeFileSync(conf, ganeshaConfig(exportPath, stateDir));
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    ip('netns', 'add', netns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    ip('addr', 'add', `${options.hostAddress}/${prefix}`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    ip('-n', netns, 'addr', 'add', `${options.serverAddress}/${prefix}`, 'dev', 'eth0');
    ip('-n', netns, 'link', 'set', 'eth0', 'up');
    // A persistent private mount namespace (bound to a file) with its own /run for rpcbind and ganesha.
    writeFileSync(mountNs, '');
    execFileSync('unshare', [`--mount=${mountNs}`, '--propagation', 'private', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const inNs = ['nsenter', `--mount=${mountNs}`, `--net=/run/netns/${netns}`];
    execFileSync('nsenter', [`--mount=${mountNs}`, 'mount', '-t', 'tmpfs', 'tmpfs', '/run'], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('nsenter', [`--mount=${mountNs}`, 'mkdir', '-p', '/run/ganesha', '/run/rpcbind'], { stdio: ['ignore', 'ignore', 'pipe'] });
    rpcbind = spawn(inNs[0]!, [...inNs.slice(1), 'rpcbind', '-f', '-w'], { stdio: 'ignore' });
    const deadline = Date.now() + GANESHA_START_MS;
    while (!(await portOpen(options.serverAddress, 111))) {
      if (Date.now() > deadline || rpcbind.exitCode !== null) throw new Error(`rpcbind did not start in namespace ${netns}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ganesha = spawn(inNs[0]!, [...inNs.slice(1), 'ganesha.nfsd', '-F', '-L', logFile, '-f', conf, '-p', join(dir, 'ganesha.pid')], { stdio: 'ignore' });
    while (!(await portOpen(options.serverAddress, 2049))) {
      if (Date.now() > deadline || ganesha.exitCode !== null) throw new Error(`ganesha.nfsd did not start in namespace ${netns}:\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { netns, address: options.serverAddress, exportPath, source: `${options.serverAddress}:${exportPath}`, log, stop };
}
