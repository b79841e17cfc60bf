import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

let source: string | undefined;

/** axe-core's browser bundle (the npm package `axe-core`, a devDependency). */
function axeSource(): string {
  if (source === undefined) {
    const require = createRequire(import.meta.url);
    let path: string;
    try {
      path = require.resolve('axe-core/axe.min.js');
    } catch {
      throw new Error('axe-core is missing: run `npm ci` (it is a devDependency)');
    }
    source = readFileSync(path, 'utf8');
  }
  return source;
}

/**
 * Runs axe-core in the page as it is now and answers the serious and critical violations. The bundle goes in
 * through the DevTools protocol (page.evaluate), which the page's Content-Security-Policy does not govern, so the
 * check runs against the page exactly as served.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  if (!(await page.evaluate('typeof window.axe !== "undefined"'))) await page.evaluate(axeSource());
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')),
  })))`)) as AxeViolation[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
