import { mkdirSync, writeFileSync } from 'node:fs';

/** Writes a benchmark's result to bench/results/NAME.json (not committed; issues quote these files). */
export function writeResult(name: string, result: unknown): void {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/${name}.json`, `${JSON.stringify(result, null, 2)}\n`);
}
