/**
 * The second half of `npm run build` (after tsc has compiled to dist/): the dashboard's files beside
 * the compiled server, and the workflow bundle the worker loads instead of bundling at start.
 */
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { slimWorkflowBundle } from '../workers/bundle';

const ROOT = join(__dirname, '..');
const DIST = join(ROOT, 'dist');
const noop = (): void => undefined;
/** webpack's progress lines are noise here; warnings and errors are not. */
const quiet = { trace: noop, debug: noop, info: noop, log: noop, warn: console.warn, error: console.error };

async function main(): Promise<void> {
  cpSync(join(ROOT, 'src', 'dashboard', 'public'), join(DIST, 'src', 'dashboard', 'public'), { recursive: true });
  const started = Date.now();
  // Without the sources' text in its source map (workers/bundle.ts): the stack traces stay, the worker is smaller.
  const code = slimWorkflowBundle((await bundleWorkflowCode({ workflowsPath: join(DIST, 'workflows', 'index.js'), logger: quiet })).code);
  // Same place as workers/main.ts's PREBUILT_BUNDLE (dist/workers/../workflow-bundle.js).
  writeFileSync(join(DIST, 'workflow-bundle.js'), code);
  console.log(`build: dist/workflow-bundle.js (${Math.round(code.length / 1024)} KiB, ${Date.now() - started} ms)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
