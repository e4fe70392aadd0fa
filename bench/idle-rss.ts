/**
 * What an idle worker's RSS is made of (issue 14, worker memory), and what the worker options change:
 * `npx tsx bench/idle-rss.ts [--runs N]`. Starts a dev server, bundles the product's workflows once,
 * then forks bench/idle-rss-child.ts per variant (in turn, `runs` times) and prints a markdown table.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { startDevServer } from '../testkit/dev-server';
import { slimWorkflowBundle } from '../workers/bundle';

interface Reply {
  stages: Array<{ stage: string; rss: number; heap: number; external: number }>;
  threads: number;
}

const VARIANTS: Array<{ name: string; tuning?: Record<string, unknown>; execArgv?: string[]; bundle?: 'slim' | 'no-map' }> = [
  { name: 'defaults (reuseV8Context, 1 workflow thread)' },
  { name: 'bundle without sourcesContent (workers/bundle.ts)', bundle: 'slim' },
  { name: 'bundle with an empty source map (stack traces unmapped)', bundle: 'no-map' },
  { name: 'slim bundle + --max-semi-space-size=2 (the product now)', bundle: 'slim', execArgv: ['--max-semi-space-size=2'] },
  { name: 'maxCachedWorkflows 100', tuning: { maxCachedWorkflows: 100 } },
  { name: 'reuseV8Context false (2 workflow threads)', tuning: { reuseV8Context: false } },
  { name: 'V8 --max-semi-space-size=2 (MiB)', execArgv: ['--max-semi-space-size=2'] },
  { name: 'V8 --max-old-space-size=160', execArgv: ['--max-old-space-size=160'] },
];

async function main(): Promise<void> {
  const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 2);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-idle-rss-'));
  const server = await startDevServer({ uiPort: false });
  try {
    const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quiet });
    const bundleFile = join(dir, 'bundle.js');
    writeFileSync(bundleFile, bundle.code);
    const slim = slimWorkflowBundle(bundle.code);
    const at = bundle.code.lastIndexOf('//# sourceMappingURL=');
    const noMap = `${bundle.code.slice(0, at)}//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify({ version: 3, file: 'workflow-bundle.js', sources: [], names: [], mappings: '' })).toString('base64')}\n`;
    const files = { full: bundleFile, slim: join(dir, 'slim.js'), 'no-map': join(dir, 'no-map.js') };
    writeFileSync(files.slim, slim);
    writeFileSync(files['no-map'], noMap);
    const kib = (c: string) => (Buffer.byteLength(c) / 1024).toFixed(0);
    console.log(`product workflow bundle: ${kib(bundle.code)} KiB (source map ${kib(bundle.code.slice(at))} KiB); without sourcesContent ${kib(slim)} KiB; code only ${kib(noMap)} KiB`);
    const results = new Map<string, Reply[]>();
    for (let r = 0; r < runs; r++) {
      for (const v of VARIANTS) {
        const proc = fork(join(__dirname, 'idle-rss-child.ts'), [], {
          execArgv: ['--import', 'tsx', '--expose-gc', ...(v.execArgv ?? [])],
          env: { ...process.env, BENCH_IDLE: JSON.stringify({ address: server.address, namespace: server.namespace, taskQueue: `idle-${r}-${v.name.length}`, bundleFile: files[v.bundle ?? 'full'], tuning: v.tuning, idleMs: 5000 }) },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const reply = await new Promise<Reply>((resolve, reject) => {
          proc.on('message', (m: Reply & { type?: string }) => m.type === 'ready' && resolve(m));
          proc.once('exit', (code) => reject(new Error(`${v.name}: exited ${code}`)));
        });
        await new Promise((res) => (proc.exitCode !== null ? res(undefined) : proc.once('exit', res)));
        results.set(v.name, [...(results.get(v.name) ?? []), reply]);
        console.log(`${v.name} #${r + 1}: ${reply.stages.map((s) => `${s.stage} ${s.rss.toFixed(0)}`).join(' | ')} (threads ${reply.threads})`);
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
    const first = results.get(VARIANTS[0]?.name as string) as Reply[];
    console.log('\n| stage (defaults) | RSS MiB | V8 heap used MiB | external MiB |\n| --- | --- | --- | --- |');
    for (const [i, s] of (first[0]?.stages ?? []).entries()) {
      const m = (k: 'rss' | 'heap' | 'external') => median(first.map((x) => x.stages[i]?.[k] ?? NaN)).toFixed(0);
      console.log(`| ${s.stage} | ${m('rss')} | ${m('heap')} | ${m('external')} |`);
    }
    console.log('\n| variant | idle RSS MiB (after polling) | after GC | threads |\n| --- | --- | --- | --- |');
    for (const v of VARIANTS) {
      const xs = results.get(v.name) as Reply[];
      const at = (k: number) => median(xs.map((x) => x.stages[k]?.rss ?? NaN)).toFixed(0);
      console.log(`| ${v.name} | ${at(5)} | ${at(6)} | ${xs[0]?.threads} |`);
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
