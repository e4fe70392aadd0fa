/**
 * A deployment at scale on the simulated fleet (issue 13, items 2 and 6): N hosts in waves of
 * `waveSize` with `maxParallel`, one host (`failAt`, 1-based in deployment order) whose activation
 * fails, so the deployment halts, reverts and rolls every switched host back. Measures what each
 * workflow execution of the deployment cost in history events and bytes (the protobuf size Temporal
 * counts), the parent's and the largest child's. Used by `npm run bench:scale` and by
 * tests/simfleet/bounded-history.test.ts.
 */
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { startSimWorld, type SimWorld } from './world';
import type { SimLatency } from './host';

export interface ScaleOptions {
  hosts: number;
  waveSize: number;
  maxParallel: number;
  /** 1-based position of the host that fails (0: none). */
  failAt: number;
  /** Hosts per wave child (the rollout's hostsPerChild; default the product's). */
  hostsPerChild?: number;
  /** The rollout's buildFirst (every host built before the first switch). */
  buildFirst?: boolean;
  /** 1-based position of a host whose build fails (0 or absent: none). */
  failBuildAt?: number;
  latency?: SimLatency;
  /** Worker activity slots (default: maxParallel + a few). */
  activitySlots?: number;
  /**
   * Runs the worker elsewhere (bench/scale.ts: its own process, so its memory is its own) instead of
   * in this process: started on the task queue before the deployment, stopped after it closed.
   */
  externalWorker?: (taskQueue: string, activitySlots: number) => Promise<{ stop(): Promise<void> }>;
  /** Called once the deployment has started (bench/scale.ts starts its viewers there). */
  onStarted?: (deploymentId: string) => void;
}

export interface ExecutionCost {
  workflowId: string;
  type: string;
  events: number;
  bytes: number;
  /** Signals the execution received (a wave's per-host signals would show here). */
  signals: number;
  activities: number;
  children: number;
  /** Hosts in its input (a wave child's, a rollback or release child's; the deployment's). */
  hosts: number;
  /** Where the bytes are: each event's encoded size summed by what it carries (historyBytesBy). */
  bytesBy: Record<string, number>;
}

export interface ScaleResult {
  status: DeploymentStatus;
  wallMs: number;
  parent: ExecutionCost;
  children: ExecutionCost[];
  /** The child with the most events. */
  largestChild?: ExecutionCost;
  /** The fleet's peak of open SSH connections. */
  peakConnections: number;
}

export const hostName = (i: number): string => `s${String(i).padStart(6, '0')}`;

/** Events, bytes, signals, activities and children of one execution's history. */
export async function executionCost(client: Client, workflowId: string): Promise<ExecutionCost & { childIds: string[] }> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const childIds: string[] = [];
  let signals = 0;
  let activities = 0;
  for (const e of events) {
    if (e.workflowExecutionSignaledEventAttributes) signals += 1;
    if (e.activityTaskScheduledEventAttributes) activities += 1;
    const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (c?.workflowId) childIds.push(c.workflowId);
  }
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  const type = started?.workflowType?.name ?? '?';
  const hosts = hostsInInput(started?.input?.payloads?.[0]?.data);
  const bytes = temporal.api.history.v1.History.encode(history).finish().length;
  return { workflowId, type, events: events.length, bytes, signals, activities, children: childIds.length, hosts, childIds, bytesBy: historyBytesBy(events) };
}

/**
 * Each event's encoded size, summed by what it carries: the workflow's input and result, child
 * inputs and results by the child's type (a rollback and a release apart), activity inputs and
 * results by activity, and the rest (workflow tasks, markers) as `other`.
 */
export function historyBytesBy(events: temporal.api.history.v1.IHistoryEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (k: string, e: temporal.api.history.v1.IHistoryEvent): void => {
    out[k] = (out[k] ?? 0) + temporal.api.history.v1.HistoryEvent.encode(e).finish().length;
  };
  const childKind = (type: string | null | undefined, id: string | null | undefined): string => `${type ?? '?'}${id?.includes('-release') ? '(release)' : id?.includes('-rollback-') ? '(rollback)' : ''}`;
  const activityType = new Map<string, string>();
  for (const e of events) {
    const id = String(e.eventId ?? '');
    const a = e.activityTaskScheduledEventAttributes;
    if (a) activityType.set(id, a.activityType?.name ?? '?');
    if (e.workflowExecutionStartedEventAttributes) add('workflow input', e);
    else if (e.workflowExecutionCompletedEventAttributes) add('workflow result', e);
    else if (e.startChildWorkflowExecutionInitiatedEventAttributes) {
      const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
      add(`child input: ${childKind(c.workflowType?.name, c.workflowId)}`, e);
    } else if (e.childWorkflowExecutionCompletedEventAttributes) {
      const c = e.childWorkflowExecutionCompletedEventAttributes;
      add(`child result: ${childKind(c.workflowType?.name, c.workflowExecution?.workflowId)}`, e);
    } else if (a) add(`activity input: ${a.activityType?.name ?? '?'}`, e);
    else if (e.activityTaskCompletedEventAttributes) add(`activity result: ${activityType.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId ?? '')) ?? '?'}`, e);
    else if (e.workflowExecutionSignaledEventAttributes) add('signals', e);
    else add('other', e);
  }
  return out;
}

function hostsInInput(data: Uint8Array | null | undefined): number {
  if (!data) return 0;
  try {
    const input = JSON.parse(Buffer.from(data).toString('utf8')) as { hosts?: unknown[]; hostsRef?: { count?: number }; groups?: Array<{ hosts?: unknown[] }> };
    // Children of deployments whose hosts go by reference: the reference's count (src/domain/host-refs.ts).
    if (typeof input.hostsRef?.count === 'number') return input.hostsRef.count;
    return input.hosts?.length ?? (input.groups ?? []).reduce((n, g) => n + (g.hosts?.length ?? 0), 0);
  } catch {
    return 0;
  }
}

/** Runs the deployment on `world` with a worker of its own and measures it. */
export async function runScaleDeployment(
  t: { client: Client; nativeConnection: NativeConnection; namespace: string },
  world: SimWorld,
  opts: ScaleOptions,
  taskQueue: string,
  workflowBundle?: { code: string },
): Promise<ScaleResult> {
  const names = world.fleet.hosts.map((h) => h.name);
  if (opts.failAt > 0) world.fleet.host(hostName(opts.failAt)).host.failActivation('script');
  if (opts.failBuildAt) world.fleet.host(hostName(opts.failBuildAt)).host.failBuild(true);
  const waves = [];
  for (let i = 0; i * opts.waveSize < names.length; i++) waves.push({ name: `w${i + 1}`, hosts: names.slice(i * opts.waveSize, (i + 1) * opts.waveSize), maxParallel: opts.maxParallel });
  const pr = await world.openLockUpdate('v2');
  const fleetFile = parseWith(FleetFile, {
    ...world.fleetFile({ revert: 'commit', rollbackHosts: true }),
    rollout: { waves, ...(opts.hostsPerChild ? { hostsPerChild: opts.hostsPerChild } : {}), ...(opts.buildFirst ? { buildFirst: true } : {}) },
    manualWindow: 0,
  });
  const input = buildDeployInput(fleetFile, { pullRequest: pr.number }, 'bench', { searchAttributes: false });
  const slots = opts.activitySlots ?? opts.maxParallel + 10;
  const deploy = async (): Promise<DeploymentStatus> => {
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input] });
    opts.onStarted?.(input.deploymentId);
    return handle.result();
  };
  let status: DeploymentStatus;
  let t0: number;
  if (opts.externalWorker) {
    const external = await opts.externalWorker(taskQueue, slots);
    world.fleet.resetPeak();
    t0 = Date.now();
    try {
      status = await deploy();
    } finally {
      await external.stop();
    }
  } else {
    const { worker, close } = await createDeployWorker({
      connection: t.nativeConnection,
      namespace: t.namespace,
      taskQueue,
      deps: world.activityDeps(),
      maxConcurrentActivityTaskExecutions: slots,
      ...(workflowBundle ? { workflowBundle } : {}),
    });
    world.fleet.resetPeak();
    t0 = Date.now();
    try {
      status = await worker.runUntil(deploy());
    } finally {
      await close();
    }
  }
  const wallMs = Date.now() - t0;
  const { childIds, ...parent } = await executionCost(t.client, input.deploymentId);
  const children: ExecutionCost[] = [];
  for (const id of childIds) {
    if (!id.startsWith(input.deploymentId)) continue; // the fleet lock is the repository's, not the deployment's
    const { childIds: _grand, ...c } = await executionCost(t.client, id);
    children.push(c);
  }
  const largestChild = children.reduce<ExecutionCost | undefined>((a, c) => (a === undefined || c.events > a.events ? c : a), undefined);
  return { status, wallMs, parent, children, ...(largestChild ? { largestChild } : {}), peakConnections: world.fleet.stats().peakOpen };
}

/** The simulated world for `n` hosts (NixOS, seeded generations 1 and 2). */
export function startScaleWorld(n: number, latency?: SimLatency): Promise<SimWorld> {
  return startSimWorld({ hosts: Array.from({ length: n }, (_, i) => ({ name: hostName(i + 1), kind: 'nixos' as const, generations: [1, 2] })), ...(latency ? { latency } : {}) });
}
