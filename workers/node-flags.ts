/**
 * The Node flags the worker runs with (package.json's worker scripts, the Dockerfile, the compose file;
 * tests/deploy/worker-flags.test.ts keeps them in step). `--max-semi-space-size=2`: V8's young
 * generation at 2 MiB per semi-space instead of growing to 16+ in each isolate (the main one and the
 * workflow thread's). The worker allocates in small, short-lived pieces (payloads, SSH chunks), so the
 * smaller nursery costs no measurable time and ~35 MiB of peak RSS less (bench/experiments.ts
 * `heap-small`, BENCHMARKS.md).
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=2'] as const;
