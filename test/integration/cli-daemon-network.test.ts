import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { type CliMode, requestsTo, runIn, type StepResult } from '../helpers/cli-modes.ts';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { networkLeftovers } from '../helpers/outside-ns.ts';
import { SerialShell, UDHCPC_SCRIPT_SETUP } from '../helpers/serial-shell.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
// Subnets of this file only (test files share one network namespace; network-tiny uses 10.91-10.93, the API
// test 10.231.77-79).
const NAT = '10.148.1.0/24';
const ISO = '10.148.2.0/24';
const YAML_NET = '10.148.3.0/24';
const LAN = '10.148.4.0/24';
/** An existing bridge for a bridged network, unique to this test process. */
const BRIDGE = `vnxcn${process.pid.toString(36)}`.slice(0, 15);
const NETWORKS = ['cn-nat', 'cn-iso', 'cn-yaml', 'cn-br', 'cn-lan'];
const INSTANCES = ['cn-vm', 'cn-bare', 'cn-vm2'];

/** What differs between two runs that did the same: network ids (bridges, nft tables), MACs, taps, pids, dates. */
function normalize(text: string): string {
  return text
    .replace(/vnb[0-9a-f]{8}/g, 'vnbID')
    .replace(/virtnode_[0-9a-f]{8}/g, 'virtnode_ID')
    .replace(/vnt[0-9a-f]{10}/g, 'vntTAP')
    .replace(/"id": "[0-9a-f]{8}"/g, '"id": "ID"')
    .replace(/^(\s*id: )"?[0-9a-f]{8}"?$/gm, '$1ID') // YAML quotes an id of digits only
    .replace(/52:54:00(:[0-9a-f]{2}){3}/g, 'MAC')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'DATE')
    .replace(/pid \d+/g, 'pid N')
    .replace(/("dnsmasqPid": |dnsmasqPid: )\d+/g, '$1N');
}

/** A CLI step and the exit code it must have in both modes; or something done between steps (not compared). */
type Step = { args: string[]; code: number } | { setup: () => Promise<void> };
const ok = (...args: string[]): Step => ({ args, code: 0 });
const fails = (code: number, ...args: string[]): Step => ({ args, code });

describe('network, nic and port commands: the same through the daemon as without it', { timeout: 480_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-clinet-');
  let daemon: RunningDaemon | undefined;
  let blocker: Server | undefined;
  let tlsPort = 0;
  const cert = join(home, 'cert.pem');
  const key = join(home, 'key.pem');
  const networkIds = new Set<string>();
  const shells: SerialShell[] = [];

  /** Runs the steps in one mode, checking each exit code; returns the normalized transcript. */
  const transcript = async (mode: CliMode, steps: Step[]): Promise<StepResult[]> => {
    const out: StepResult[] = [];
    for (const step of steps) {
      if ('setup' in step) {
        await step.setup();
        continue;
      }
      const r = await runIn(mode, home, step.args);
      for (const m of r.stdout.matchAll(/"id": "([0-9a-f]{8})"|^\s*id: "?([0-9a-f]{8})"?$|vnb([0-9a-f]{8})/gm)) networkIds.add((m[1] ?? m[2] ?? m[3])!);
      expect(r.code, `${mode}: virtnode ${step.args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(step.code);
      out.push({ args: step.args, code: r.code, stdout: normalize(r.stdout), stderr: normalize(r.stderr) });
    }
    return out;
  };
  const must = async (mode: CliMode, args: string[]) => {
    const r = await runIn(mode, home, args);
    expect(r.code, `${mode}: virtnode ${args.join(' ')}\n${r.stderr}`).toBe(0);
    if (args[0] === 'network' && args[1] === 'create') networkIds.add(JSON.parse((await runIn(mode, home, ['network', 'info', args[2]!, '--format', 'json'])).stdout).id);
    return r;
  };
  /** How many requests of the daemon's log this test's resources got so far. */
  const daemonWork = () => ['GET', 'POST', 'DELETE'].reduce((sum, method) => sum + requestsTo(daemon!, method, /^\/networks|^\/instances\/cn-(vm|bare)\/(nics|ports)/), 0);

  beforeAll(async () => {
    execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    tlsPort = await freeLoopbackPort();
    daemon = await startDaemon(home, ['--listen', `127.0.0.1:${tlsPort}`, '--tls-cert', cert, '--tls-key', key]);
  });
  afterAll(async () => {
    for (const s of shells) s.close();
    blocker?.close();
    // Nothing left behind, also after a failure half way: instances, then networks, in-process.
    for (const name of INSTANCES) await virtnode(home, ['delete', '--force', name], { env: { VIRTNODE_NO_DAEMON: '1' } }).catch(() => {});
    for (const name of NETWORKS) await virtnode(home, ['network', 'rm', name], { env: { VIRTNODE_NO_DAEMON: '1' } }).catch(() => {});
    await daemon?.stop('SIGTERM');
    try {
      execFileSync('ip', ['link', 'del', BRIDGE]);
    } catch {
      /* not made */
    }
    cleanup();
  });

  it('network create, ls, info, leases, rm: same output, errors and exit codes; nothing left', async () => {
    const longText = `10.148.${'1'.repeat(80)}.0/24`;
    const steps: Step[] = [
      ok('network', 'create', 'cn-nat', '--subnet', NAT, '--dhcp-range', '10.148.1.50-10.148.1.60', '--domain', 'cn.test'),
      ok('network', 'create', 'cn-iso', '--isolated', '--subnet', ISO, '--format', 'json'),
      ok('network', 'create', 'cn-yaml', '--isolated', '--subnet', YAML_NET, '--format', 'yaml'),
      ok('network', 'create', 'cn-br', '--bridge', BRIDGE),
      ok('network', 'ls'),
      ok('network', 'list', '--format', 'json'),
      ok('network', 'ls', '--format', 'yaml'),
      ok('network', 'info', 'cn-nat'),
      ok('network', 'info', 'cn-iso', '--format', 'json'),
      ok('network', 'info', 'cn-yaml', '--format', 'yaml'),
      ok('network', 'info', 'cn-br'),
      ok('network', 'info', 'cn-br', '--format', 'json'),
      ok('network', 'leases', 'cn-nat'),
      ok('network', 'leases', 'cn-nat', '--format', 'json'),
      ok('network', 'leases', 'cn-iso', '--format', 'yaml'),
      // bad input, unknown names, wrong state
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/33'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.7/24'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', longText),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', ''),
      fails(4, 'network', 'create', 'cn-bad', '--subnet', '10.148.1.0/25'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/24', '--dhcp-range', '10.148.8.5-10.148.8.9'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/24', '--dhcp-range', 'lots'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/24', '--domain', 'bad domain!'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/24', '--domain', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.test`),
      fails(3, 'network', 'create', 'cn-bad', '--bridge', 'nosuchbr0'),
      fails(2, 'network', 'create', 'cn-bad', '--bridge', 'way-too-long-bridge'),
      fails(2, 'network', 'create', 'cn-bad', '--bridge', 'br/0'),
      fails(2, 'network', 'create', 'cn-bad', '--bridge', ''),
      fails(2, 'network', 'create', 'cn-bad', '--bridge', BRIDGE, '--subnet', '10.148.9.0/24'),
      fails(2, 'network', 'create', 'Bad_Name', '--subnet', '10.148.9.0/24'),
      fails(2, 'network', 'create', 'x'.repeat(64), '--subnet', '10.148.9.0/24'),
      fails(2, 'network', 'create', 'cn-bad', '--nat', '--isolated'),
      fails(2, 'network', 'create', 'cn-bad', '--subnet', '10.148.9.0/24', '--format', 'xml'),
      fails(4, 'network', 'create', 'cn-nat', '--subnet', '10.148.9.0/24'),
      fails(2, 'network', 'ls', '--format', 'xml'),
      fails(3, 'network', 'info', 'nope'),
      fails(2, 'network', 'info', 'Bad_Name'),
      fails(2, 'network', 'info', ''),
      fails(2, 'network', 'info', 'cn-nat', '--format', 'xml'),
      fails(3, 'network', 'rm', 'nope'),
      fails(2, 'network', 'rm', '../x'),
      fails(3, 'network', 'leases', 'nope'),
      fails(2, 'network', 'leases', 'Bad_Name'),
      fails(2, 'network', 'leases', 'cn-br'),
      ok('network', 'rm', 'cn-br'),
      ok('network', 'delete', 'cn-yaml'),
      ok('network', 'rm', 'cn-iso'),
      ok('network', 'rm', 'cn-nat'),
      ok('network', 'ls', '--format', 'json'),
    ];
    const viaDaemon = await transcript('daemon', steps);
    await daemon!.logCaughtUp();
    const worked = daemonWork();
    expect(requestsTo(daemon!, 'POST', '/networks')).toBeGreaterThanOrEqual(4);
    expect(requestsTo(daemon!, 'GET', '/networks/cn-nat/leases')).toBe(2);
    expect(requestsTo(daemon!, 'DELETE', '/networks/cn-nat')).toBe(1);
    // bad input and unknown names were answered by the daemon too
    expect([requestsTo(daemon!, 'GET', '/networks/nope'), requestsTo(daemon!, 'GET', '/networks/Bad_Name'), requestsTo(daemon!, 'DELETE', '/networks/..%2Fx')]).toEqual([1, 1, 1]);
    const local = await transcript('local', steps);
    expect(viaDaemon).toEqual(local);
    await daemon!.logCaughtUp();
    expect(daemonWork()).toBe(worked); // the second run did not go through the daemon
    expect(viaDaemon.at(-1)!.stdout).toBe('[]\n');
    expect(viaDaemon[4]!.stdout).toMatch(/^NAME +MODE +SUBNET +BRIDGE +DOMAIN +INSTANCES\n/);
    expect(networkLeftovers(home, [...networkIds])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    expect(networkIds.size).toBeGreaterThanOrEqual(8); // four networks in each run
  });

  it('nic attach, detach, ls and port add, ls, rm, offline and live, with leases: the same either way', async () => {
    const [p1, p2, busy] = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(busy, '127.0.0.1', resolve));
    let shell: SerialShell | undefined;
    const steps = (mode: CliMode): Step[] => [
      { setup: async () => void (await must(mode, ['network', 'create', 'cn-lan', '--isolated', '--subnet', LAN])) },
      { setup: async () => void (await must(mode, ['create', 'cn-vm', ...bootArgs])) },
      { setup: async () => void (await must(mode, ['create', 'cn-bare', ...bootArgs, '--network', 'none'])) },
      // offline
      ok('nic', 'ls', 'cn-vm'),
      ok('nic', 'attach', 'cn-vm', 'cn-lan'),
      ok('nic', 'attach', 'cn-vm', 'cn-lan', '--ip', '10.148.4.20'),
      ok('nic', 'attach', 'cn-bare', 'user'),
      ok('nic', 'ls', 'cn-vm'),
      ok('nic', 'ls', 'cn-vm', '--format', 'json'),
      ok('nic', 'ls', 'cn-bare', '--format', 'yaml'),
      ok('network', 'ls'),
      ok('network', 'info', 'cn-lan'),
      fails(5, 'network', 'rm', 'cn-lan'),
      fails(3, 'nic', 'attach', 'cn-vm', 'nonet'),
      fails(4, 'nic', 'attach', 'cn-vm', 'cn-lan', '--ip', '10.148.4.20'),
      fails(2, 'nic', 'attach', 'cn-vm', 'cn-lan', '--ip', '192.168.1.5'),
      fails(2, 'nic', 'attach', 'cn-vm', 'cn-lan', '--ip', 'not-an-ip'),
      fails(2, 'nic', 'attach', 'cn-vm', 'Bad_Net'),
      fails(2, 'nic', 'attach', 'cn-vm', ''),
      fails(2, 'nic', 'attach', 'cn-vm', 'n'.repeat(70)),
      fails(2, 'nic', 'attach', 'cn-vm', 'cn-lan', '--ip', '1'.repeat(70)),
      fails(3, 'nic', 'attach', 'nope', 'cn-lan'),
      fails(2, 'nic', 'attach', 'Bad_Name', 'cn-lan'),
      fails(3, 'nic', 'detach', 'cn-vm', '52:54:00:00:00:99'),
      fails(3, 'nic', 'detach', 'cn-vm', '9'),
      fails(3, 'nic', 'detach', 'cn-vm', 'x'.repeat(40)),
      fails(3, 'nic', 'detach', 'cn-vm', ''),
      fails(3, 'nic', 'detach', 'nope', '0'),
      fails(3, 'nic', 'ls', 'nope'),
      fails(2, 'nic', 'ls', 'cn-vm', '--format', 'xml'),
      ok('nic', 'detach', 'cn-vm', '2'),
      ok('nic', 'detach', 'cn-bare', '0'),
      ok('port', 'ls', 'cn-vm'),
      ok('port', 'add', 'cn-vm', `${p1}:80`),
      ok('port', 'add', 'cn-vm', `${p2}:53/udp`, '--address', '0.0.0.0'),
      ok('port', 'ls', 'cn-vm'),
      ok('port', 'ls', 'cn-vm', '--format', 'json'),
      ok('port', 'ls', 'cn-vm', '--format', 'yaml'),
      fails(4, 'port', 'add', 'cn-vm', `${p1}:81`),
      fails(4, 'port', 'add', 'cn-vm', `${busy}:80`),
      fails(2, 'port', 'add', 'cn-vm', '99999:80'),
      fails(2, 'port', 'add', 'cn-vm', '8080-80'),
      fails(2, 'port', 'add', 'cn-vm', ''),
      fails(2, 'port', 'add', 'cn-vm', '18080:80', '--address', ''),
      fails(2, 'port', 'add', 'cn-vm', `${'8'.repeat(40)}:80`),
      fails(2, 'port', 'add', 'cn-vm', '18080:80', '--address', 'not-an-address'),
      fails(5, 'port', 'add', 'cn-bare', '18080:80'),
      fails(3, 'port', 'add', 'nope', '18080:80'),
      fails(3, 'port', 'rm', 'cn-vm', '18080'),
      fails(2, 'port', 'rm', 'cn-vm', 'x'),
      fails(2, 'port', 'rm', 'cn-vm', ''),
      fails(2, 'port', 'rm', 'cn-vm', '1'.repeat(20)),
      fails(3, 'port', 'ls', 'nope'),
      fails(2, 'port', 'ls', 'Bad_Name'),
      ok('port', 'rm', 'cn-vm', `${p2}/udp`),
      // live
      { setup: async () => void (await must(mode, ['start', 'cn-vm'])) },
      {
        setup: async () => {
          await waitForText(join(home, 'instances', 'cn-vm', 'console.log'), TEST_GUEST_READY_MARKER, 90_000);
          shell = await SerialShell.open(join(home, 'instances', 'cn-vm'));
          shells.push(shell);
          await shell.run(UDHCPC_SCRIPT_SETUP);
        },
      },
      ok('port', 'rm', 'cn-vm', `${p1}`),
      ok('port', 'add', 'cn-vm', `${p2}:7777`),
      ok('port', 'ls', 'cn-vm'),
      fails(4, 'port', 'add', 'cn-vm', `${p2}:7778`),
      ok('nic', 'attach', 'cn-vm', 'cn-lan'),
      {
        setup: async () => {
          const seen = await shell!.run('for i in $(seq 1 20); do [ -e /sys/class/net/eth2 ] && break; sleep 1; done; ls /sys/class/net');
          expect(seen.output).toContain('eth2');
          const dhcp = await shell!.run('ip link set eth2 up && udhcpc -i eth2 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
          expect(dhcp.status, dhcp.output).toBe(0);
        },
      },
      ok('network', 'leases', 'cn-lan'),
      ok('network', 'leases', 'cn-lan', '--format', 'json'),
      ok('nic', 'ls', 'cn-vm'),
      ok('network', 'info', 'cn-lan', '--format', 'yaml'),
      fails(5, 'nic', 'detach', 'cn-vm', '0'),
      ok('nic', 'detach', 'cn-vm', '2'),
      ok('nic', 'ls', 'cn-vm', '--format', 'json'),
      ok('port', 'rm', 'cn-vm', `${p2}`),
      {
        setup: async () => {
          shell?.close();
          await must(mode, ['delete', '--force', 'cn-vm']);
          await must(mode, ['delete', 'cn-bare']);
        },
      },
      ok('network', 'ls'),
      ok('network', 'rm', 'cn-lan'),
    ];
    const viaDaemon = await transcript('daemon', steps('daemon'));
    await daemon!.logCaughtUp();
    const worked = daemonWork();
    const counts = [
      requestsTo(daemon!, 'POST', '/instances/cn-vm/nics'),
      requestsTo(daemon!, 'DELETE', '/instances/cn-vm/nics/2'),
      requestsTo(daemon!, 'POST', '/instances/cn-vm/ports'),
      requestsTo(daemon!, 'GET', '/networks/cn-lan/leases'),
    ];
    const local = await transcript('local', steps('local'));
    expect(viaDaemon).toEqual(local);
    expect(counts).toEqual([11, 2, 12, 2]);
    await daemon!.logCaughtUp();
    expect(daemonWork()).toBe(worked);
    // the lease was really there, with its instance
    const leases = JSON.parse(viaDaemon.find((s) => s.args.join(' ') === 'network leases cn-lan --format json')!.stdout) as Array<{ address: string; instance?: string }>;
    expect(leases).toEqual([expect.objectContaining({ address: '10.148.4.3', instance: 'cn-vm', hostname: 'cn-vm-nic2' })]);
    expect(networkLeftovers(home, [...networkIds])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  });

  it('over --remote (HTTPS with a token) the commands print what they print on the socket', async () => {
    await must('daemon', ['network', 'create', 'cn-nat', '--subnet', NAT]);
    await must('daemon', ['create', 'cn-vm2', ...bootArgs, '--network', 'cn-nat', '--network', 'user']);
    const port = await freeLoopbackPort();
    const token = (await must('local', ['token', 'create', 'cn-remote'])).stdout.trim();
    const env = { VIRTNODE_TOKEN: token, VIRTNODE_CA: cert, VIRTNODE_HOME: join(home, 'elsewhere') };
    const remote = ['--remote', `https://localhost:${tlsPort}`];
    const commands = [
      ['network', 'ls'],
      ['network', 'info', 'cn-nat', '--format', 'json'],
      ['network', 'leases', 'cn-nat'],
      ['nic', 'ls', 'cn-vm2'],
      ['port', 'ls', 'cn-vm2', '--format', 'yaml'],
      ['network', 'info', 'nope'],
      ['nic', 'attach', 'cn-vm2', 'nonet'],
      ['port', 'rm', 'cn-vm2', `${port}`],
    ];
    const before = requestsTo(daemon!, 'GET', '/networks/cn-nat');
    for (const args of commands) {
      const far = await virtnode(home, [...remote, ...args], { env });
      const near = await runIn('daemon', home, args);
      expect({ code: far.code, stdout: normalize(far.stdout), stderr: normalize(far.stderr) }, args.join(' ')).toEqual({ code: near.code, stdout: normalize(near.stdout), stderr: normalize(near.stderr) });
    }
    // and changes, made remotely
    const far = async (args: string[]) => {
      const r = await virtnode(home, [...remote, ...args], { env });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    expect(await far(['port', 'add', 'cn-vm2', `${port}:80`])).toBe(`Forwarding 127.0.0.1:${port}/tcp to cn-vm2 port 80\n`);
    expect(await far(['nic', 'attach', 'cn-vm2', 'cn-nat', '--ip', '10.148.1.77'])).toMatch(/^Attached NIC 2 \(52:54:00:[0-9a-f:]{8}\) on cn-nat, address 10\.148\.1\.77 to cn-vm2\n$/);
    expect(await far(['nic', 'detach', 'cn-vm2', '2'])).toMatch(/^Detached NIC 2 \(52:54:00:[0-9a-f:]{8}\) from cn-vm2\n$/);
    expect(await far(['port', 'rm', 'cn-vm2', `${port}`])).toBe(`Removed 127.0.0.1:${port}/tcp from cn-vm2\n`);
    expect(requestsTo(daemon!, 'POST', '/instances/cn-vm2/ports')).toBeGreaterThanOrEqual(1);
    expect(requestsTo(daemon!, 'GET', '/networks/cn-nat')).toBe(before + 2);
    await must('daemon', ['delete', 'cn-vm2']);
    await must('daemon', ['network', 'rm', 'cn-nat']);
    expect(networkLeftovers(home, [...networkIds])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  });

  it('a socket left by a crashed daemon: the commands work in-process, as without a daemon', async () => {
    const stale = tempHome('virtnode-clinet-stale-');
    try {
      // a UNIX socket nobody listens on (bound, never listening: connect is refused)
      execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(stale.home, 'virtnode.sock')]);
      const steps = [['network', 'ls', '--format', 'json'], ['network', 'info', 'nope'], ['nic', 'ls', 'nope'], ['port', 'ls', 'nope']];
      const out = [];
      for (const args of steps) {
        const r = await virtnode(stale.home, args);
        out.push({ code: r.code, stdout: r.stdout, stderr: r.stderr });
      }
      expect(out).toEqual([
        { code: 0, stdout: '[]\n', stderr: '' },
        { code: 3, stdout: '', stderr: 'error: network nope does not exist\nhint: see `virtnode network ls`; create one with `virtnode network create NAME`\n' },
        { code: 3, stdout: '', stderr: 'error: instance nope does not exist\nhint: see `virtnode list` for the instances there are\n' },
        { code: 3, stdout: '', stderr: 'error: instance nope does not exist\nhint: see `virtnode list` for the instances there are\n' },
      ]);
    } finally {
      stale.cleanup();
    }
  });
});
