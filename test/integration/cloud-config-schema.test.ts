/**
 * virtnode's cloud-config validator against the reference: Debian's own `cloud-init schema --config-file F`
 * (the JSON schema the guest applies) on every file of test/fixtures/cloud-config. Both must reach the same
 * verdict (valid / invalid) for every file, except the few deliberate disagreements listed in DISAGREEMENTS,
 * each justified here and in a leading comment of its fixture.
 *
 * Corpus naming: valid-* (no issues), warn-* (valid, at least one warning), invalid-* (at least one error).
 *
 * cloud-init must be installed on the test host, without it ever acting on the host:
 *   mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled && apt-get install -y cloud-init
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { validateCloudConfig } from '../../src/cloudinit/validate.ts';
import type { ValidationResult } from '../../src/cloudinit/validate.ts';
import { MODULES } from '../../src/cloudinit/validate/modules.ts';

const DIR = join(import.meta.dirname, '../fixtures/cloud-config');
const INSTALL_HINT =
  'install cloud-init without letting it act on this host: ' +
  'mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled && apt-get install -y cloud-init';
const PER_FILE_TIMEOUT_MS = 20_000;

type Verdict = 'valid' | 'invalid';

/**
 * Files where virtnode deliberately disagrees with cloud-init's schema, with the verdict cloud-init gives.
 *  - valid-sudo-list.yaml: a list of sudo rules. cloud-init's runtime writes every rule of a list
 *    (cloudinit/distros/__init__.py write_sudo_rules handles list and str), but the 22.4 JSON schema only allows
 *    a string, null or boolean; virtnode follows what the guest actually does.
 */
const DISAGREEMENTS: Readonly<Record<string, Verdict>> = {
  'valid-sudo-list.yaml': 'invalid',
};

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function expectedOurs(file: string): Verdict {
  return file.startsWith('invalid-') ? 'invalid' : 'valid';
}

interface Reference {
  verdict: Verdict;
  output: string;
}

let schemaArgv: string[] = [];
const reference = new Map<string, Reference>();

/** `cloud-init schema` (22.x and later) or `cloud-init devel schema` (older), whichever this cloud-init has. */
async function findSchemaCommand(): Promise<string[]> {
  try {
    await run(['cloud-init', '--version'], { timeoutMs: PER_FILE_TIMEOUT_MS });
  } catch (e) {
    if (isVirtnodeError(e, 'MISSING_PROGRAM')) throw new Error(`cloud-init is not installed; ${INSTALL_HINT}`);
    throw e;
  }
  for (const argv of [['cloud-init', 'schema'], ['cloud-init', 'devel', 'schema']]) {
    const r = await run([...argv, '--help'], { timeoutMs: PER_FILE_TIMEOUT_MS, okCodes: [0, 1, 2] });
    if (r.code === 0 && r.stdout.includes('--config-file')) return argv;
  }
  throw new Error(`this cloud-init has no "schema --config-file" command; ${INSTALL_HINT} (22.x or later)`);
}

/**
 * cloud-init's verdict on every file, from one Python process running cloud-init's own command line once per file
 * (test/helpers/cloud-init-schema-batch.py: the same code and output as `cloud-init schema --config-file F`, one
 * interpreter start instead of one per file). Exit 0 with "Valid cloud-config" is valid; exit 1 with one of its
 * error reports is invalid. Anything else (a crash, an unexpected message) fails the test instead of counting as a
 * verdict.
 */
async function referenceVerdicts(): Promise<void> {
  // The interpreter cloud-init's own command runs with (its #! line).
  const command = (process.env['PATH'] ?? '').split(':').map((dir) => join(dir, 'cloud-init')).find((path) => existsSync(path));
  if (command === undefined) throw new Error(`cloud-init is not on PATH; ${INSTALL_HINT}`);
  const python = /^#!\s*(\S+)/.exec(readFileSync(command, 'utf8').split('\n', 1)[0]!)?.[1];
  if (python === undefined) throw new Error(`${command} has no #! line naming its Python`);
  const batch = join(import.meta.dirname, '../helpers/cloud-init-schema-batch.py');
  const r = await run([python, batch, JSON.stringify(schemaArgv.slice(1)), ...files.map((f) => join(DIR, f))], { timeoutMs: files.length * PER_FILE_TIMEOUT_MS });
  for (const line of r.stdout.trim().split('\n')) {
    const answer = JSON.parse(line) as { file: string; code: number; stdout: string; stderr: string };
    const file = answer.file.slice(DIR.length + 1);
    const output = `${answer.stdout}\n${answer.stderr}`;
    if (answer.code === 0 && /Valid cloud-config/.test(output)) reference.set(file, { verdict: 'valid', output });
    else if (answer.code === 1 && /schema errors|not a YAML dict|needs to begin with|not valid yaml/i.test(output)) reference.set(file, { verdict: 'invalid', output });
    else throw new Error(`unexpected result from ${schemaArgv.join(' ')} on ${file}: exit ${answer.code}: ${output.trim()}`);
  }
  expect([...reference.keys()].sort()).toEqual(files);
}

beforeAll(async () => {
  schemaArgv = await findSchemaCommand();
  await referenceVerdicts();
}, 120_000);

function ours(file: string): ValidationResult {
  return validateCloudConfig(readFileSync(join(DIR, file), 'utf8'), { source: file });
}

describe('cloud-config corpus', () => {
  it('is large enough and covers all three kinds', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
    for (const prefix of ['valid-', 'warn-', 'invalid-']) {
      expect(files.filter((f) => f.startsWith(prefix)).length, prefix).toBeGreaterThanOrEqual(10);
    }
    expect(files.filter((f) => !/^(valid|warn|invalid)-[a-z0-9-]+\.yaml$/.test(f))).toEqual([]);
  });

  it('exercises every thoroughly checked module in an accepted file and in a rejected one', () => {
    const acceptedKeys = new Set<string>();
    const rejectedPaths: string[] = [];
    for (const f of files) {
      const r = ours(f);
      if (r.ok) for (const k of Object.keys(r.config ?? {})) acceptedKeys.add(k);
      else rejectedPaths.push(...r.issues.filter((i) => i.severity === 'error').map((i) => i.path));
    }
    const missingAccepted = Object.keys(MODULES).filter((k) => !acceptedKeys.has(k));
    expect(missingAccepted).toEqual([]);
    // Rejections: at least the core identity modules have a fixture that breaks them.
    for (const k of ['users', 'write_files', 'runcmd', 'bootcmd', 'packages', 'mounts', 'chpasswd', 'ntp', 'growpart', 'resize_rootfs', 'power_state', 'ssh_keys']) {
      expect(rejectedPaths.some((p) => p === k || p.startsWith(`${k}.`) || p.startsWith(`${k}[`)), k).toBe(true);
    }
  });

  it('lists only real disagreements, each explained in its fixture', () => {
    for (const [file, theirs] of Object.entries(DISAGREEMENTS)) {
      expect(files).toContain(file);
      expect(reference.get(file)?.verdict, `cloud-init's verdict on ${file}`).toBe(theirs);
      expect(theirs).not.toBe(expectedOurs(file));
      expect(readFileSync(join(DIR, file), 'utf8').split('\n').slice(0, 5).join('\n')).toMatch(/DELIBERATE DISAGREEMENT/);
    }
  });
});

describe.each(files)('%s', (file) => {
  it('gets the verdict its name promises, with issues of the right kind', () => {
    const r = ours(file);
    const errors = r.issues.filter((i) => i.severity === 'error');
    const warnings = r.issues.filter((i) => i.severity === 'warning');
    if (file.startsWith('invalid-')) {
      expect(r.ok).toBe(false);
      expect(errors.length).toBeGreaterThan(0);
      for (const e of errors) {
        expect(e.line, `${e.path}: ${e.message}`).toBeGreaterThanOrEqual(1);
        expect(e.column).toBeGreaterThanOrEqual(1);
      }
    } else if (file.startsWith('warn-')) {
      expect(errors).toEqual([]);
      expect(warnings.length).toBeGreaterThan(0);
    } else {
      expect(r.issues).toEqual([]);
      expect(r.config).toBeTypeOf('object');
    }
  });

  it('agrees with cloud-init schema (or is a listed deliberate disagreement)', () => {
    const ref = reference.get(file);
    if (ref === undefined) throw new Error(`no cloud-init verdict for ${file}`);
    const mine: Verdict = ours(file).ok ? 'valid' : 'invalid';
    const expected = DISAGREEMENTS[file] === undefined ? mine : DISAGREEMENTS[file];
    expect(ref.verdict, `cloud-init said:\n${ref.output.trim()}`).toBe(expected);
  });
});
