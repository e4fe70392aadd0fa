import { readFileSync, writeFileSync } from 'node:fs';

/** Where BENCHMARKS.md's experiments section starts: bench/experiments.ts rewrites from here on, bench/run.ts keeps it. */
export const EXPERIMENTS_MARKER = '<!-- experiments: written by bench/experiments.ts, kept by bench/run.ts -->';

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The experiments section of `file` (from the marker on), or '' when it has none. */
export function experimentsSection(file: string): string {
  const old = read(file);
  const at = old.indexOf(EXPERIMENTS_MARKER);
  return at >= 0 ? old.slice(at) : '';
}

/** Where the measured table ends: what follows (the written findings) is kept when the table is rewritten. */
export const EXPERIMENTS_END = '<!-- end of the experiments table; the findings below are written by hand -->';

/** Replaces the experiments table of `file` (or appends one) with `body`; the findings after it stay. */
export function writeExperimentsSection(file: string, body: string): void {
  const old = read(file);
  const at = old.indexOf(EXPERIMENTS_MARKER);
  const head = at >= 0 ? old.slice(0, at) : `${old}\n`;
  const end = old.indexOf(EXPERIMENTS_END);
  const tail = end >= 0 ? old.slice(end + EXPERIMENTS_END.length) : '\n';
  writeFileSync(file, `${head}${EXPERIMENTS_MARKER}\n\n${body.trimEnd()}\n\n${EXPERIMENTS_END}${tail}`);
}
