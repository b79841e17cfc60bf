import { spawn } from 'node:child_process';
import { VirtnodeError } from '../lib/errors.ts';
import { reportsNoSpace } from '../lib/no-space.ts';

/** Debian package that provides each external program virtnode runs, for "missing program" hints. */
export const PROGRAM_PACKAGES: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  setpriv: 'util-linux',
  'qemu-ga': 'qemu-guest-agent',
  xorriso: 'xorriso',
  genisoimage: 'genisoimage',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  debootstrap: 'debootstrap',
  dnsmasq: 'dnsmasq-base',
  nft: 'nftables',
  ip: 'iproute2',
  'ssh-keygen': 'openssh-client',
  ssh: 'openssh-client',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  resize2fs: 'e2fsprogs',
  extlinux: 'extlinux',
  cpio: 'cpio',
  'cloud-init': 'cloud-init',
  openssl: 'openssl',
  virsh: 'libvirt-clients',
  'virt-xml-validate': 'libvirt-clients',
  'virt-install': 'virtinst',
  xmllint: 'libxml2-utils',
  'ansible-inventory': 'ansible-core',
  ansible: 'ansible-core',
  taskset: 'util-linux',
  nsenter: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  losetup: 'mount',
  'lxc-start': 'lxc',
  'lxc-stop': 'lxc',
  'lxc-info': 'lxc',
  'lxc-attach': 'lxc',
  'lxc-freeze': 'lxc',
  'lxc-unfreeze': 'lxc',
  tar: 'tar',
};

export function installHint(program: string): string {
  const pkg = PROGRAM_PACKAGES[program.split('/').pop() ?? program];
  return pkg === undefined ? `install ${program}` : `install it with: apt-get install ${pkg}`;
}

export interface RunOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Data written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
  /** Sees the child's standard output as it comes (progress); it is still collected as well. */
  onStdout?: (chunk: string) => void;
  /** Called once the program runs (it was found and started). */
  onSpawn?: () => void;
  /**
   * Kill the program when virtnode dies (a crash, kill -9), through setpriv --pdeathsig: for a helper VM that
   * would otherwise go on holding a disk's lock for nobody, or never end (a guest hung under a broken KVM).
   */
  diesWithVirtnode?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** A program that failed for a full disk is NO_SPACE (lib/no-space.ts names the directory), else COMMAND_FAILED. */
export class CommandError extends VirtnodeError {
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(argv: readonly string[], exitCode: number | null, stderr: string, reason: string) {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    super(reportsNoSpace(stderr) ? 'NO_SPACE' : 'COMMAND_FAILED', `${argv[0]} ${reason}${tail ? `: ${tail}` : ''}`);
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const OUTPUT_LIMIT_BYTES = 64 * 1024 * 1024;
const PARENT_DEATH_KILLS = ['setpriv', '--pdeathsig', 'KILL', '--'];
/** setpriv's status when it could not execute the program (as a shell's 127). */
const SETPRIV_EXEC_FAILED = 127;

/**
 * The one door to external programs: an argument array, never a shell. A missing program is a MISSING_PROGRAM
 * error naming the Debian package; a non-zero exit is a CommandError carrying argv, exit code and stderr.
 */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const program = argv[0];
  if (program === undefined) throw new VirtnodeError('INTERNAL', 'run() needs a program');
  const [spawned, ...args] = options.diesWithVirtnode === true ? [...PARENT_DEATH_KILLS, ...argv] : argv;
  return new Promise((resolve, reject) => {
    const child = spawn(spawned!, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= OUTPUT_LIMIT_BYTES) into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    if (options.onStdout !== undefined) child.stdout.on('data', (chunk: Buffer) => options.onStdout!(chunk.toString('utf8')));
    child.stderr.on('data', collect(err));
    if (options.onSpawn !== undefined) child.once('spawn', options.onSpawn);
    child.stdin.on('error', () => {}); // the child may exit before reading its input
    child.stdin.end(options.input ?? '');
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(new VirtnodeError('MISSING_PROGRAM', `${spawned} is not installed`, { hint: installHint(spawned!) }));
      } else if (e.name === 'AbortError') {
        reject(new VirtnodeError('TIMEOUT', `${program} was cancelled`, { cause: e }));
      } else {
        reject(new VirtnodeError('COMMAND_FAILED', `${program} could not be started: ${e.message}`, { cause: e }));
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new CommandError(argv, null, stderr, `timed out after ${options.timeoutMs} ms`));
      } else if (options.diesWithVirtnode === true && code === SETPRIV_EXEC_FAILED && /^setpriv: failed to execute .*: No such file or directory$/m.test(stderr)) {
        reject(new VirtnodeError('MISSING_PROGRAM', `${program} is not installed`, { hint: installHint(program) }));
      } else if (code === null) {
        reject(new CommandError(argv, null, stderr, `was killed by ${signal}`));
      } else if (!(options.okCodes ?? [0]).includes(code)) {
        reject(new CommandError(argv, code, stderr, `exited with code ${code}`));
      } else {
        resolve({ stdout, stderr, code });
      }
    });
  });
}
