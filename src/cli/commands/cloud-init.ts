import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { VirtnodeError } from '../../lib/errors.ts';

export function registerCloudInitCommands(program: Command): void {
  const cloudInit = program.command('cloud-init').description('cloud-init user-data tools');
  cloudInit
    .command('validate')
    .description('check a cloud-config before using it: YAML, header, keys, and the modules virtnode supports')
    .argument('<file>', 'a #cloud-config file')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { json?: boolean }) => {
      const { validateCloudConfig, formatIssues } = await import('../../cloudinit/validate.ts');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new VirtnodeError('NOT_FOUND', `<file>: cannot read ${file}: ${(e as Error).message}`, { field: 'file' });
      }
      const result = validateCloudConfig(text, { source: file });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ok: result.ok, issues: result.issues }, null, 2)}\n`);
      } else {
        if (result.issues.length > 0) process.stderr.write(`${formatIssues(result, file)}\n`);
        if (result.ok) process.stdout.write(`${file}: valid cloud-config${result.issues.length > 0 ? ` (${result.issues.length} warning${result.issues.length > 1 ? 's' : ''})` : ''}\n`);
      }
      if (!result.ok) {
        const errors = result.issues.filter((i) => i.severity === 'error').length;
        throw new VirtnodeError('INVALID', `${file}: ${errors} error${errors > 1 ? 's' : ''} in the cloud-config`, { field: 'file' });
      }
    });
}
