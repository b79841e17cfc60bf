import { describe, expect, it } from 'vitest';
import { parseCloudInitResult } from './readiness.ts';

describe('parseCloudInitResult', () => {
  it('a result without errors is done, with the datasource', () => {
    expect(parseCloudInitResult('{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]", "errors": []}}\n')).toEqual({
      status: 'done',
      datasource: 'NoCloud',
      detail: 'DataSourceNoCloud [seed=/dev/vdb][dsmode=net]',
    });
  });

  it('errors make it an error, listed in the detail', () => {
    expect(parseCloudInitResult('{"v1": {"datasource": "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]", "errors": ["(\'scripts_user\', RuntimeError(\'1 failed\'))"]}}')).toEqual({
      status: 'error',
      datasource: 'ConfigDrive',
      detail: "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]; ('scripts_user', RuntimeError('1 failed'))",
    });
  });

  it('anything else is unknown, saying what was read', () => {
    expect(parseCloudInitResult('not json')).toMatchObject({ status: 'unknown', datasource: undefined, detail: 'unreadable result.json: not json' });
    expect(parseCloudInitResult('{"v2": {}}').status).toBe('unknown');
  });
});
