/**
 * Jest-only plumbing. @octokit/rest 22 and its dependencies are ESM-only. Node 20.19+ loads them
 * from CommonJS (require(esm)), so the product, tsx and the worker are fine, but jest's own module
 * runtime cannot (only on Node >= 24.9). Until jest.config.js transforms them, test files replace
 * the module with the SAME code bundled to CommonJS by esbuild (shipped with tsx), cached in tmp:
 *
 *   jest.mock('@octokit/rest', () => jest.requireActual<{ loadOctokitRest(): unknown }>('./octokit-cjs').loadOctokitRest());
 */
import { buildSync } from 'esbuild';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export function loadOctokitRest(): unknown {
  const root = resolve(__dirname, '..', '..');
  const { version } = JSON.parse(readFileSync(join(root, 'node_modules', '@octokit', 'rest', 'package.json'), 'utf8')) as { version: string };
  const out = join(tmpdir(), `nixfleet-octokit-rest-${version}.cjs`);
  if (!existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    buildSync({
      stdin: { contents: "export * from '@octokit/rest';", resolveDir: root, loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      outfile: tmp,
      logLevel: 'silent',
    });
    renameSync(tmp, out);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(out) as unknown;
}
