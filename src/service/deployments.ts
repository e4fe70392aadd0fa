import { QueryNotRegisteredError, ServiceError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import type { DeployInput, DeploymentStatus, RollbackPreview, RollbackRequest } from '../domain/deployment';
import { inputHosts } from '../domain/host-refs';
import { limitPreview } from '../domain/saga';
import { deployWorkflow } from '../../workflows/deploy';
import { dryRunWorkflow, hostChangesWorkflow, type DeployPlan } from '../../workflows/dry-run';
import type { ClosureDiff } from '../domain/closure-diff';
import { fleetLockId, legacyFleetLockId } from '../../workflows/fleet-lock';
import type { ProgressPage } from '../domain/progress';
import { pageHosts, summarize, type HostPage, type HostPageQuery, type StatusSummary, type SummaryProgressPage } from '../domain/host-pages';
import { deploymentSummary } from '../domain/presentation';
import { notifyWarnings } from '../domain/notify-targets';
import { controlsQuery, controlUpdate, progressSinceQuery, rollbackPreviewQuery, rollbackUpdate, statusQuery, type ControlOutcome, type ControlsView, type RollbackOutcome } from '../../workflows/messages';
import type { ControlRequest } from '../domain/controls';
import { startNowUpdate, type StartNowOutcome, type StartNowRequest } from '../../workflows/windows';
import { buildDeployInput, ChangeInput, FleetFile, parseWith } from '../schemas/fleet.schema';
import { LastGood, SharedProgress, SingleFlight } from './coalesce';
import { mergeLiveHosts, mergeLivePage, mergeLiveSummary, type LiveHost } from '../domain/live-child';
import { hostsPageQuery, progressSummarySinceQuery, summaryQuery, waveHostsQuery, type WaveHostsView } from '../../workflows/report-messages';

export class NotFoundError extends Error {
  readonly code = 'NOT_FOUND';
}
export class ConflictError extends Error {
  readonly code = 'CONFLICT';
}
/** The deployment's worker did not answer a read in time (busy or restarting) and no recent answer is kept: retry shortly (503). */
export class UnavailableError extends Error {
  readonly code = 'UNAVAILABLE';
  readonly retryAfterSeconds = 1;
}

/**
 * Bounded reads (summary, host pages) wait at most `deadlineMs` for the worker: past it, or when the
 * server gives up first, the kept answer stands in if it is at most `maxAgeMs` old (of `maxEntries`
 * kept). Without the deadline every viewer waits on the one coalesced query for as long as the server
 * lets it hang, and the kept answer is too old by then (bench:scale's viewers at 5,000 hosts: 503s).
 */
export const STALE_READS = { deadlineMs: 4_000, maxAgeMs: 60_000, maxEntries: 500 } as const;

/** The server gave up on a query no worker took in time (`query timed out before a worker could process it`): gRPC DEADLINE_EXCEEDED. */
export function isQueryTimeout(err: unknown): boolean {
  if (!(err instanceof ServiceError)) return false;
  return (err.cause as { code?: unknown } | undefined)?.code === 4 || /query timed out/i.test(err.message);
}

export interface DeploymentSummary {
  deploymentId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, TERMINATED, … */
  status: string;
  startTime?: string;
  closeTime?: string;
  phase?: string;
  repository?: string;
  outcome?: string;
  failedHost?: string;
  /** How many hosts there are in each state, when the deployment's state could be read (no host list: bounded at any fleet size). */
  hostCounts?: StatusSummary['hosts'];
}

/** The live feed's bounded page, with the running wave child's hosts (whose changes the feed passes on). */
export type LiveSummaryPage = SummaryProgressPage & { live: LiveHost[] };

/** Runs `fn` over `items`, at most `n` at a time. */
async function mapLimit<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, run));
  return out;
}

export interface DeploymentServiceOptions {
  searchAttributes: boolean;
  /**
   * How long a deployment's state, once read, is served to further readers without a new query
   * (default 0: readers share only the query in flight). Reads are always coalesced per deployment.
   */
  shareMs?: number;
}

/**
 * Use cases over the Temporal client, shared by the API and the CLI. Reads of a deployment's state
 * (status, progress: every HTTP viewer and the progress hub) are coalesced: one workflow query per
 * deployment in flight, its answer shared by every reader waiting for it (src/service/coalesce.ts).
 */
export class DeploymentService {
  private readonly shared: SharedProgress;
  /** The live feed's bounded reads (progressSummarySince), coalesced as `shared`. */
  private readonly sharedSummary: SharedProgress<SummaryProgressPage>;
  private readonly statusReads: SingleFlight<DeploymentStatus>;
  /** A running wave child's hosts, one query in flight per child (shared by every reader). */
  private readonly childReads: SingleFlight<WaveHostsView>;
  /** The workflow's summary and host pages, one query in flight per deployment and request. */
  private readonly boundedReads: SingleFlight<unknown>;
  /** Their last answers, for a read the worker does not answer in time (answered with `staleMs`). */
  private readonly lastReads = new LastGood<object>(STALE_READS.maxAgeMs, STALE_READS.maxEntries);
  /** statusQuery calls (deployments without progressSince): with shared.queries, the workflow queries this service sent. */
  private statusQueries = 0;

  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    private readonly opts: DeploymentServiceOptions = { searchAttributes: true },
  ) {
    this.shared = new SharedProgress((id, since) => this.client.workflow.getHandle(id).query(progressSinceQuery, since), { maxAgeMs: opts.shareMs ?? 0 });
    this.sharedSummary = new SharedProgress((id, since) => this.client.workflow.getHandle(id).query(progressSummarySinceQuery, since), { maxAgeMs: opts.shareMs ?? 0 });
    this.statusReads = new SingleFlight(opts.shareMs ?? 0);
    this.childReads = new SingleFlight(opts.shareMs ?? 0);
    this.boundedReads = new SingleFlight(opts.shareMs ?? 0);
  }

  /** Workflow queries sent so far (status and progress), for the metrics. */
  get workflowQueries(): number {
    return this.shared.queries + this.sharedSummary.queries + this.statusQueries;
  }

  async start(body: { fleet: unknown; change: unknown }, requestedBy: string): Promise<{ deploymentId: string; runId: string; warnings?: string[] }> {
    const fleet = parseWith(FleetFile, body.fleet, 'fleet');
    const change = parseWith(ChangeInput, body.change, 'change');
    const input = buildDeployInput(fleet, change, requestedBy, this.opts);
    // One deployment per fleet: say who holds it now (the workflow refuses too, race-free).
    const holder = await this.fleetHolder(input.repository);
    if (holder) throw new ConflictError(`deployment ${holder} holds ${input.repository.owner}/${input.repository.name}@${input.repository.branch}; wait for it, or dismiss it if it awaits an operator`);
    // Temporal Web shows these on the workflow's page and in the list (user metadata, SDK 1.24).
    const { summary, details } = deploymentSummary(input);
    try {
      const handle = await this.client.workflow.start(deployWorkflow, {
        taskQueue: this.taskQueue,
        workflowId: input.deploymentId,
        args: [input],
        staticSummary: summary,
        staticDetails: details,
        ...(this.opts.searchAttributes
          ? { searchAttributes: { NixfleetRepository: [`${input.repository.owner}/${input.repository.name}`], NixfleetPhase: ['starting'] } }
          : {}),
      });
      const warnings = notifyWarnings(fleet.notify);
      return { deploymentId: input.deploymentId, runId: handle.firstExecutionRunId, ...(warnings.length ? { warnings } : {}) };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new ConflictError(`deployment ${input.deploymentId} is already running`);
      }
      throw err;
    }
  }

  /**
   * Starts the deployment of a pull request unless its deployment (the same deterministic id) runs or
   * ran: Temporal refuses a second start of the id (REJECT_DUPLICATE, and a running one conflicts), so
   * however often GitHub redelivers, or however many reviews approve, it starts once (within
   * Temporal's retention of the closed run). `started: false` says it was already there.
   */
  async startOnce(fleet: FleetFile, change: ChangeInput, requestedBy: string): Promise<{ deploymentId: string; started: boolean }> {
    const input = buildDeployInput(fleet, change, requestedBy, this.opts);
    const holder = await this.fleetHolder(input.repository);
    if (holder === input.deploymentId) return { deploymentId: input.deploymentId, started: false };
    if (holder) throw new ConflictError(`deployment ${holder} holds ${input.repository.owner}/${input.repository.name}@${input.repository.branch}; wait for it, or dismiss it if it awaits an operator`);
    try {
      await this.client.workflow.start(deployWorkflow, {
        taskQueue: this.taskQueue,
        workflowId: input.deploymentId,
        args: [input],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        ...(this.opts.searchAttributes
          ? { searchAttributes: { NixfleetRepository: [`${input.repository.owner}/${input.repository.name}`], NixfleetPhase: ['starting'] } }
          : {}),
      });
      return { deploymentId: input.deploymentId, started: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { deploymentId: input.deploymentId, started: false };
      throw err;
    }
  }

  /**
   * The deployment holding the fleet's lock, if one does. A deployment started before the escaped
   * lock ids holds the legacy id (its workflow keeps it, patched()): look there too, so an upgrade
   * never lets a second deployment onto a fleet that one still holds (the legacy id can be shared
   * with another fleet: that errs on refusing, and only while such a deployment runs).
   */
  async fleetHolder(repository: { owner: string; name: string; branch: string }): Promise<string | undefined> {
    for (const lockId of [fleetLockId(repository), legacyFleetLockId(repository)]) {
      try {
        const d = await this.client.workflow.getHandle(lockId).describe();
        if (d.status.name === 'RUNNING') return d.parentExecution?.workflowId ?? lockId;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    return undefined;
  }

  /** The plan of a deployment (waves, hosts, commands, generations now) without touching anything. */
  async dryRun(body: { fleet: unknown; change: unknown; closureDiff?: boolean }, requestedBy: string): Promise<DeployPlan> {
    const fleet = parseWith(FleetFile, body.fleet, 'fleet');
    const change = parseWith(ChangeInput, body.change, 'change');
    const input = buildDeployInput(fleet, change, requestedBy, { searchAttributes: false });
    return this.client.workflow.execute(dryRunWorkflow, {
      taskQueue: this.taskQueue,
      workflowId: `dryrun-${input.deploymentId}-${Date.now().toString(36)}`,
      args: [input, { closureDiff: body.closureDiff === true }],
      // A closure diff builds every host's target: as long as a build may take.
      workflowExecutionTimeout: body.closureDiff ? '2 hours' : '5 minutes',
    });
  }

  /**
   * What the deployment changed on a host (`deployed`: from its recorded generation to the one it was
   * switched to, or to the build's target before the switch) or what a rollback would undo
   * (`rollback`: the reverse), as `nix store diff-closures` on the host says. The host's address comes
   * from the deployment's own input (its first history event), never from the caller.
   */
  async hostChanges(id: string, hostName: string, direction: 'deployed' | 'rollback' = 'deployed'): Promise<{ host: string; direction: 'deployed' | 'rollback'; diff: ClosureDiff }> {
    const status = await this.status(id);
    const h = status.hosts.find((x) => x.name === hostName);
    if (!h) throw new NotFoundError(`deployment ${id} has no host ${hostName}`);
    const to = h.after?.storePath ?? h.target;
    if (!h.before || !to || to === h.before.storePath) throw new ConflictError(`${hostName} has no change to show (${h.state}: ${h.before ? 'not switched or built yet' : 'its generation was never recorded'})`);
    const history = await this.client.workflow.getHandle(id).fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const input = payload ? this.client.options.loadedDataConverter.payloadConverter.fromPayload<DeployInput>(payload) : undefined;
    const host = input ? inputHosts(input).find((x) => x.name === hostName) : undefined;
    if (!host) throw new NotFoundError(`deployment ${id}: host ${hostName} is not in its input`);
    const [from, target] = direction === 'deployed' ? [h.before.storePath, to] : [to, h.before.storePath];
    const diff = await this.client.workflow.execute(hostChangesWorkflow, {
      taskQueue: this.taskQueue,
      workflowId: `changes-${id}-${hostName}-${Date.now().toString(36)}`,
      args: [{ deploymentId: id, host, from, to: target }],
      workflowExecutionTimeout: '5 minutes',
    });
    return { host: hostName, direction, diff };
  }

  /** The most recent deployments, newest first, each with its hosts' states when they can be read. */
  async list(limit = 50): Promise<DeploymentSummary[]> {
    const out: DeploymentSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: `WorkflowType = 'deployWorkflow'` })) {
      const sa = wf.searchAttributes as Record<string, unknown[] | undefined>;
      out.push({
        deploymentId: wf.workflowId,
        status: wf.status.name,
        startTime: wf.startTime.toISOString(),
        closeTime: wf.closeTime?.toISOString(),
        phase: sa.NixfleetPhase?.[0] as string | undefined,
        repository: sa.NixfleetRepository?.[0] as string | undefined,
      });
      if (out.length >= limit) break;
    }
    return mapLimit(out, 4, async (d) => {
      try {
        const s = await this.summary(d.deploymentId);
        return {
          ...d,
          phase: s.phase,
          repository: `${s.repository.owner}/${s.repository.name}`,
          ...(s.outcome ? { outcome: s.outcome } : {}),
          ...(s.failedHost ? { failedHost: s.failedHost } : {}),
          hostCounts: s.hosts,
        };
      } catch {
        return d;
      }
    });
  }

  /**
   * The deployment's state: the status query while it runs; once it has completed, its result (read
   * from the history, so no worker is needed to answer).
   */
  async status(id: string): Promise<DeploymentStatus> {
    return this.statusReads.run(id, async () => {
      const handle = this.client.workflow.getHandle<typeof deployWorkflow>(id);
      try {
        const d = await handle.describe();
        if (d.status.name === 'COMPLETED') return await handle.result();
        // The shared progress query answers the status too (the same state, as of its cursor).
        try {
          const st = (await this.shared.get(id, null)).status;
          return mergeLiveHosts(st, await this.liveHosts(st));
        } catch (err) {
          if (!(err instanceof QueryNotRegisteredError)) throw err;
          this.statusQueries += 1;
          return await handle.query(statusQuery);
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
        throw err;
      }
    });
  }

  /**
   * The running wave child's hosts (its `waveHosts` query, one in flight per child), or none: no
   * child running, a deployment whose waves signal each host, or a child that just completed.
   */
  private async liveHosts(s: Pick<DeploymentStatus, 'liveChild'>): Promise<LiveHost[]> {
    const child = s.liveChild;
    if (child === undefined) return [];
    try {
      return (await this.childReads.run(child, () => this.client.workflow.getHandle(child).query(waveHostsQuery))).hosts;
    } catch {
      // Gone between the two reads (completed: the deployment's next answer holds its hosts).
      return [];
    }
  }

  /**
   * The workflow's own bounded read (summary or page) when it answers it, coalesced per deployment and
   * request; undefined for a closed deployment or one started before those queries.
   */
  private async workflowRead<T>(id: string, key: string, read: () => Promise<T>): Promise<T | undefined> {
    const d = await this.client.workflow.getHandle(id).describe().catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
      throw err;
    });
    if (d.status.name !== 'RUNNING') return undefined;
    const k = `${id}\n${key}`;
    try {
      const value = (await this.boundedReads.run(k, () => this.client.connection.withDeadline(Date.now() + STALE_READS.deadlineMs, read))) as T;
      if (typeof value === 'object' && value !== null) this.lastReads.remember(k, value);
      return value;
    } catch (err) {
      if (err instanceof QueryNotRegisteredError) return undefined;
      if (isQueryTimeout(err)) {
        // A busy worker (a large workflow task, a restart): the last answer, with its age, or a 503 to retry.
        const last = this.lastReads.recall(k);
        if (last) return { ...last.value, staleMs: last.ageMs } as T;
        throw new UnavailableError(`deployment ${id}: its worker did not answer in time (busy or restarting); retry shortly`);
      }
      throw err;
    }
  }

  /** The bounded summary of the deployment's state (counts per state and wave, no host lists). */
  async summary(id: string): Promise<StatusSummary> {
    const handle = this.client.workflow.getHandle(id);
    const sum = await this.workflowRead(id, 'summary', () => handle.query(summaryQuery));
    if (sum === undefined) return summarize(await this.status(id));
    const live = await this.liveHosts(sum);
    return mergeLiveSummary(sum, sum.waves?.find((w) => w.state === 'running')?.name, live);
  }

  /**
   * One page of the deployment's hosts (in deployment order; optionally one wave's or one state's).
   * Cut from the (coalesced) status today: see src/domain/host-pages.ts for what a workflow-side page
   * query would add.
   */
  async hosts(id: string, q: HostPageQuery): Promise<HostPage> {
    const handle = this.client.workflow.getHandle(id);
    const page = await this.workflowRead(id, `hosts ${JSON.stringify(q)}`, () => handle.query(hostsPageQuery, q));
    if (page === undefined) return pageHosts(await this.status(id), q);
    // The summary query names the running child (liveChild) without the host list.
    const sum = await this.workflowRead(id, 'summary', () => handle.query(summaryQuery));
    return mergeLivePage(page, sum ? await this.liveHosts(sum) : []);
  }

  /**
   * The transitions after `since` (null: none, a snapshot only), the latest cursor and the status as of
   * it: the workflow's progressSince query, which a closed deployment answers too (a worker replays it).
   * When the query cannot be answered for good (a deployment started before it existed; a closed one
   * that no worker replays), the status alone, with its cursor: a reader behind it starts over from it.
   * A passing failure on a running deployment is thrown: the reader asks again with the same cursor.
   */
  async progress(id: string, since: number | null): Promise<ProgressPage> {
    const handle = this.client.workflow.getHandle(id);
    try {
      const page = await this.shared.get(id, since);
      const live = await this.liveHosts(page.status);
      return live.length === 0 ? page : { ...page, status: mergeLiveHosts(page.status, live) };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
      const forGood = err instanceof QueryNotRegisteredError || (await handle.describe().then((d) => d.status.name !== 'RUNNING', () => false));
      if (!forGood) throw err;
      const status = await this.status(id);
      const cursor = status.progressCursor ?? 0;
      return { cursor, oldest: cursor + 1, events: [], status };
    }
  }

  /**
   * progress() at any fleet size: the transitions after `since` and the bounded summary (the running
   * wave child's hosts counted in, and returned in `live` for the feed to pass on what changed).
   * Deployments whose workers predate the query, or that cannot answer it, are summarized here from
   * progress() (the same cursor semantics).
   */
  async progressSummary(id: string, since: number | null): Promise<LiveSummaryPage> {
    let page: SummaryProgressPage | undefined;
    try {
      page = await this.sharedSummary.get(id, since);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
      if (!(err instanceof QueryNotRegisteredError) && (await this.closedAs(id).catch(() => undefined)) === undefined) throw err;
    }
    if (page === undefined) {
      const full = await this.progress(id, since);
      return { cursor: full.cursor, oldest: full.oldest, events: full.events, summary: summarize(full.status), live: [] };
    }
    const live = await this.liveHosts(page.summary);
    const running = page.summary.waves?.find((w) => w.state === 'running')?.name;
    return { ...page, summary: mergeLiveSummary(page.summary, running, live), live };
  }

  /** How the deployment's execution ended (TERMINATED, CANCELED, …), or undefined while it runs. */
  async closedAs(id: string): Promise<string | undefined> {
    const d = await this.client.workflow.getHandle(id).describe();
    return d.status.name === 'RUNNING' ? undefined : d.status.name;
  }

  /** The rollback preview; `limit`: its first hosts (cut in the workflow's query; again here for workers older than the argument). */
  async preview(id: string, limit?: number): Promise<RollbackPreview> {
    try {
      const handle = this.client.workflow.getHandle(id);
      if (limit === undefined) return await handle.query(rollbackPreviewQuery);
      return limitPreview(await handle.query(rollbackPreviewQuery, { limit }), limit);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
      throw err;
    }
  }

  /** Runs a manual action through the workflow's update; a request that no longer applies is a ConflictError. */
  async act(id: string, request: RollbackRequest): Promise<RollbackOutcome> {
    try {
      return await this.actOnce(id, request);
    } finally {
      // What readers see next is asked after the action.
      this.shared.invalidate(id);
      this.sharedSummary.invalidate(id);
      this.statusReads.forget(id);
    }
  }

  private actOnce(id: string, request: RollbackRequest): Promise<RollbackOutcome> {
    return this.update(id, (h) => h.executeUpdate(rollbackUpdate, { args: [request] }));
  }

  /** Which operator controls apply now (src/domain/controls.ts), the skippable hosts, the controls' state. */
  async controls(id: string): Promise<ControlsView> {
    try {
      const view = await this.client.workflow.getHandle(id).query(controlsQuery);
      if (view.skippable.length === 0) return view;
      // The running wave child's hosts are merged in here, not in the workflow: a host it has started is not skippable.
      const pending = await this.pendingHosts(id);
      return { ...view, skippable: view.skippable.filter((h) => pending.has(h)) };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no deployment ${id}`);
      if (err instanceof QueryNotRegisteredError) throw new ConflictError(`deployment ${id} started before operator controls existed`);
      throw err;
    }
  }

  /** An operator control through the workflow's update; one that does not apply is a ConflictError with the reason. */
  async control(id: string, request: ControlRequest): Promise<ControlOutcome> {
    let sent = request;
    if (request.control === 'skip' && typeof request.host === 'string') {
      // The workflow cannot know which hosts its running wave child has started (no per-host signal): ask
      // the child's records here and tell the workflow the host's state, so a skip of a host in flight is
      // refused there with the reason and recorded in the trail with the actor.
      const h = (await this.status(id)).hosts.find((x) => x.name === request.host);
      // (A worker older than hostState accepts the skip; the deployment then withdraws it as too late, in the trail.)
      if (h && h.state !== 'pending') sent = { ...request, hostState: h.state };
    }
    try {
      return await this.update(id, (h) => h.executeUpdate(controlUpdate, { args: [sent] }));
    } finally {
      this.shared.invalidate(id);
      this.sharedSummary.invalidate(id);
      this.statusReads.forget(id);
    }
  }

  /** The hosts not started yet, the running wave child's records merged in. */
  private async pendingHosts(id: string): Promise<Set<string>> {
    return new Set((await this.status(id)).hosts.filter((h) => h.state === 'pending').map((h) => h.name));
  }

  /** An operator's override of a maintenance-window wait (workflows/windows.ts); refused (ConflictError) when nothing waits. */
  async startNow(id: string, request: StartNowRequest): Promise<StartNowOutcome> {
    try {
      return await this.updateOnce(id, () => this.client.workflow.getHandle(id).executeUpdate(startNowUpdate, { args: [request] }));
    } finally {
      this.shared.invalidate(id);
      this.sharedSummary.invalidate(id);
      this.statusReads.forget(id);
    }
  }

  /** An update whose outcome says whether it was accepted: a refusal is a ConflictError with the reason. */
  private async update<O extends { accepted: boolean; summary: string }>(id: string, send: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<O>): Promise<O> {
    return this.updateOnce(id, async () => {
      const outcome = await send(this.client.workflow.getHandle(id));
      if (!outcome.accepted) throw new ConflictError(outcome.summary);
      return outcome;
    });
  }

  private async updateOnce<T>(id: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // An update to a workflow that has completed says "not found": tell that from an unknown id.
        const closed = await this.client.workflow
          .getHandle(id)
          .describe()
          .then((d) => d.status.name)
          .catch(() => undefined);
        if (closed) throw new ConflictError(`deployment ${id} is closed (${closed.toLowerCase()}); nothing applies any more`);
        throw new NotFoundError(`no deployment ${id}`);
      }
      if (err instanceof WorkflowUpdateFailedError) {
        const cause = (err as { cause?: Error }).cause;
        throw new ConflictError(cause?.message ?? err.message);
      }
      // An update to a closed workflow fails with a not-found style error from the server.
      if (err instanceof Error && /workflow execution already completed/i.test(err.message)) {
        throw new ConflictError(`deployment ${id} is closed`);
      }
      throw err;
    }
  }
}
