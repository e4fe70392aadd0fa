import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { DeploymentStatus, Phase } from '../../src/domain/deployment';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { startWorld, type World, type WorldOptions } from '../../testkit/world';
import type { ActivityDeps } from '../../activities';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { statusQuery } from '../../workflows/messages';
import { waveHostsQuery } from '../../workflows/report-messages';
import { mergeLiveHosts } from '../../src/domain/live-child';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from './temporal';

export type DeployHandle = WorkflowHandle<typeof deployWorkflow>;

export async function startDeployment(
  t: TestTemporal,
  world: World,
  taskQueue: string,
  opts: {
    pr?: number;
    commit?: string;
    onFailure?: FleetFile['onFailure'];
    order?: string[];
    manualWindowSeconds?: number;
    requestedBy?: string;
    rollout?: unknown;
    /** The fleet file's timeouts (e.g. { build: '5m', activation: '3s' }). */
    timeouts?: Record<string, string | number>;
    /** The fleet file's notify list. */
    notify?: unknown[];
  },
): Promise<DeployHandle> {
  // The fleet file as a user writes it, parsed and validated like one.
  const raw = { ...world.fleetFile(opts.onFailure, opts.order), ...(opts.rollout ? { rollout: opts.rollout } : {}) };
  if (opts.manualWindowSeconds !== undefined) raw.manualWindow = opts.manualWindowSeconds;
  if (opts.timeouts) (raw as Record<string, unknown>).timeouts = opts.timeouts;
  if (opts.notify) (raw as Record<string, unknown>).notify = opts.notify;
  const fleet = parseWith(FleetFile, raw);
  const change = opts.commit ? { commit: opts.commit } : { pullRequest: opts.pr as number };
  const input = buildDeployInput(fleet, change, opts.requestedBy ?? 'alice');
  return t.client.workflow.start(deployWorkflow, {
    taskQueue,
    workflowId: input.deploymentId,
    args: [input],
    searchAttributes: { NixfleetRepository: [`${world.owner}/${world.repo}`] },
  });
}

export async function waitPhase(handle: DeployHandle, phases: Phase[], timeoutMs = 90_000): Promise<DeploymentStatus> {
  return waitFor(
    `deployment ${handle.workflowId} to reach ${phases.join(' or ')}`,
    async () => {
      const s = await handle.query(statusQuery);
      return phases.includes(s.phase) ? s : undefined;
    },
    timeoutMs,
    200,
  );
}

/** Commits on the branch that carry the revert trailer for `mergeSha`. */
export async function revertCommits(world: World, mergeSha: string): Promise<string[]> {
  const log = await world.github.log(world.owner, world.repo, world.branch, 100);
  return log.filter((c) => c.message.includes(`Reverts: ${mergeSha}`)).map((c) => c.sha);
}

/** SSH logins the host's sshd accepted: 0 means the deployer never contacted it. */
export function logins(world: World, host: string): number {
  return (world.fleet.host(host).sshdLog().match(/Accepted publickey/g) ?? []).length;
}

/** Profile moves the host itself logged (`nix-env --set` / `--switch-generation`, HM activations). */
export function profileMoves(world: World, host: string): { set: number; switchGeneration: number; activations: number } {
  const log = world.fleet.host(host).commandLog();
  return {
    set: log.filter((e) => e.tool === 'nix-env' && e.args.includes('--set')).length,
    switchGeneration: log.filter((e) => e.tool === 'nix-env' && e.args.includes('--switch-generation')).length,
    activations: world.fleet.host(host).activations().length,
  };
}

/**
 * With NIXFLEET_SAVE_HISTORIES=1, keeps the workflow's history as a replay fixture
 * (tests/replay/histories/<name>.json), so later changes are replayed against it in CI.
 */
export async function saveHistory(handle: Pick<DeployHandle, "fetchHistory">, name: string): Promise<void> {
  if (process.env.NIXFLEET_SAVE_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  const dir = join(__dirname, '..', 'replay', 'histories');
  mkdirSync(dir, { recursive: true });
  // Stack traces in failures name files of this checkout: keep machine paths out of the fixtures.
  const repoRoot = resolve(__dirname, '..', '..');
  writeFileSync(join(dir, `${name}.json`), historyToJSON(history).split(repoRoot).join('<repo>') + '\n');
}

export interface SagaHarness {
  /** The test file's Temporal dev server (started in beforeAll). */
  readonly t: TestTemporal;
  /** A fresh stand-in world for the current test, stopped after it (its GitHub traffic checked). */
  world(opts: WorldOptions): Promise<World>;
  /** Runs `fn` while a worker with the real activities polls a task queue of its own. */
  withWorker<T>(w: World, title: string, fn: (taskQueue: string) => Promise<T>, extra?: Partial<ActivityDeps>): Promise<T>;
}

/**
 * The stand-in worlds a test starts, stopped after it, with no request or reply that failed GitHub's
 * OpenAPI description (registers the afterEach hook: call it at the top level of a test file).
 */
export function worldPerTest(): { start(opts: WorldOptions): Promise<World> } {
  let current: World[] = [];
  afterEach(async () => {
    const worlds = current;
    current = [];
    try {
      for (const w of worlds) expect(w.github.validationFailures).toEqual([]);
    } finally {
      for (const w of worlds) await w.stop();
    }
  });
  return {
    async start(opts) {
      const w = await startWorld(opts);
      current.push(w);
      return w;
    },
  };
}

/**
 * The hooks every saga test file needs: one Temporal dev server per file, one world per test, and
 * after each test no request or reply that failed GitHub's OpenAPI description.
 */
export function sagaHarness(): SagaHarness {
  let t: TestTemporal | undefined;
  const worlds = worldPerTest();
  beforeAll(async () => {
    t = await startTestTemporal();
  });
  afterAll(async () => {
    await t?.stop();
  });
  const need = (): TestTemporal => {
    if (!t) throw new Error('the Temporal dev server is not started (use sagaHarness() at the top level of a test file)');
    return t;
  };
  return {
    get t() {
      return need();
    },
    world: (opts) => worlds.start(opts),
    async withWorker(w, title, fn, extra = {}) {
      const temporal = need();
      const taskQueue = taskQueueFor(title);
      const { worker, close } = await createDeployWorker({
        connection: temporal.nativeConnection,
        namespace: temporal.server.namespace,
        taskQueue,
        deps: { ...w.activityDeps(), ...extra },
        workflowBundle: await workflowBundle(),
      });
      try {
        return await worker.runUntil(fn(taskQueue));
      } finally {
        await close();
      }
    },
  };
}

/**
 * The deployment's status with its running wave child's hosts merged in, as the API serves it (the
 * parent learns a child's hosts only when the child completes; src/domain/live-child.ts).
 */
export async function liveStatus(t: TestTemporal, handle: DeployHandle): Promise<DeploymentStatus> {
  const s = await handle.query(statusQuery);
  if (s.liveChild === undefined) return s;
  const view = await t.client.workflow
    .getHandle(s.liveChild)
    .query(waveHostsQuery)
    .catch(() => undefined);
  return view ? mergeLiveHosts(s, view.hosts) : s;
}
