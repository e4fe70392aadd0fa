import type { temporal } from '@temporalio/proto';

type Ts = temporal.api.history.v1.IHistoryEvent['eventTime'];

export function tsMs(t: Ts): number {
  if (!t) return NaN;
  const s = t.seconds as unknown as number | { toNumber(): number } | null | undefined;
  const secs = typeof s === 'number' ? s : s ? s.toNumber() : 0;
  return secs * 1000 + (t.nanos ?? 0) / 1e6;
}

export interface ActivityTiming {
  name: string;
  activityId: string;
  local: boolean;
  scheduled: number;
  started: number;
  closed: number;
  outcome: 'completed' | 'failed' | 'other';
}

export interface WorkflowTaskTiming {
  scheduled: number;
  started: number;
  completed: number;
}

export interface HistorySummary {
  events: number;
  workflowTaskTimings: WorkflowTaskTiming[];
  startMs: number;
  closeMs: number;
  workflowTasks: number;
  activities: ActivityTiming[];
}

/** A timestamp as the SDK core's marker data writes it ({seconds, nanos} or an RFC 3339 string). */
function markerTimeMs(t: unknown): number {
  if (typeof t === 'string') return Date.parse(t);
  if (t && typeof t === 'object' && 'seconds' in t) return Number((t as { seconds: number }).seconds) * 1000 + Number((t as { nanos?: number }).nanos ?? 0) / 1e6;
  return NaN;
}

/**
 * A local activity, from its marker (the SDK core's LocalActivityMarkerData): scheduled at its first
 * attempt's schedule time, closed at its completion (worker clock); started is not recorded (= scheduled).
 */
function localActivityOf(m: temporal.api.history.v1.IMarkerRecordedEventAttributes, markerAt: number): ActivityTiming | undefined {
  const raw = m.details?.data?.payloads?.[0]?.data;
  if (!raw) return undefined;
  try {
    const d = JSON.parse(Buffer.from(raw).toString('utf8')) as { activity_id?: string; activity_type?: string; complete_time?: unknown; original_schedule_time?: unknown };
    const closed = markerTimeMs(d.complete_time);
    const scheduled = markerTimeMs(d.original_schedule_time);
    return { name: d.activity_type ?? '?', activityId: d.activity_id ?? '', local: true, scheduled: Number.isNaN(scheduled) ? markerAt : scheduled, started: Number.isNaN(scheduled) ? markerAt : scheduled, closed: Number.isNaN(closed) ? markerAt : closed, outcome: m.failure ? 'failed' : 'completed' };
  } catch {
    return undefined;
  }
}

/** Activity timings (server clock; a local activity's from its marker) and counts from a fetched history. */
export function summarize(history: temporal.api.history.v1.IHistory): HistorySummary {
  const events = history.events ?? [];
  const byScheduled = new Map<string, ActivityTiming>();
  const acts: ActivityTiming[] = [];
  let startMs = NaN;
  let closeMs = NaN;
  let workflowTasks = 0;
  const wfts: WorkflowTaskTiming[] = [];
  for (const e of events) {
    const at = tsMs(e.eventTime);
    const id = String(e.eventId);
    if (e.workflowExecutionStartedEventAttributes) startMs = at;
    if (e.workflowExecutionCompletedEventAttributes || e.workflowExecutionFailedEventAttributes || e.workflowExecutionTerminatedEventAttributes) closeMs = at;
    if (e.workflowTaskScheduledEventAttributes) wfts.push({ scheduled: at, started: NaN, completed: NaN });
    const last = wfts[wfts.length - 1];
    if (e.workflowTaskStartedEventAttributes && last) last.started = at;
    if (e.workflowTaskCompletedEventAttributes && last) last.completed = at;
    if (e.workflowTaskCompletedEventAttributes) workflowTasks += 1;
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const a: ActivityTiming = { name: s.activityType?.name ?? '?', activityId: s.activityId ?? '', local: false, scheduled: at, started: NaN, closed: NaN, outcome: 'other' };
      byScheduled.set(id, a);
      acts.push(a);
    }
    const la = e.markerRecordedEventAttributes?.markerName === 'core_local_activity' ? localActivityOf(e.markerRecordedEventAttributes, at) : undefined;
    if (la) acts.push(la);
    const st = e.activityTaskStartedEventAttributes;
    if (st) {
      const a = byScheduled.get(String(st.scheduledEventId));
      if (a) a.started = at;
    }
    const c = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (c) {
      const a = byScheduled.get(String(c.scheduledEventId));
      if (a) {
        a.closed = at;
        a.outcome = e.activityTaskCompletedEventAttributes ? 'completed' : 'failed';
      }
    }
  }
  return { events: events.length, workflowTaskTimings: wfts, startMs, closeMs, workflowTasks, activities: acts };
}

/** One workflow execution of a deployment (the parent, or one of its wave/build children). */
export interface ExecutionHistory {
  workflowId: string;
  type: string;
  events: number;
  /** history size in bytes as the server reports it (describe → historySize) */
  bytes: number;
  summary: HistorySummary;
}

export interface DeploymentHistories {
  parent: ExecutionHistory;
  /** wave and build children, in start order (the fleet-lock child is skipped: it runs until the parent closes) */
  children: ExecutionHistory[];
  /**
   * Activities of the parent and every child together; workflow-task timings of the wave children only
   * (the host steps' critical path; the parent's tasks for the signals run alongside). Start/close: the parent's.
   */
  merged: HistorySummary;
}

interface HandleLike {
  fetchHistory(): Promise<temporal.api.history.v1.IHistory>;
  describe(): Promise<{ historyLength: number; historySize?: number }>;
}
interface ClientLike {
  workflow: { getHandle(workflowId: string, runId?: string): HandleLike };
}

async function readExecution(client: ClientLike, workflowId: string, runId: string | undefined, type: string): Promise<{ exec: ExecutionHistory; history: temporal.api.history.v1.IHistory }> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const [history, desc] = await Promise.all([handle.fetchHistory(), handle.describe()]);
  const summary = summarize(history);
  return { exec: { workflowId, type, events: summary.events, bytes: desc.historySize ?? NaN, summary }, history };
}

/**
 * A deployment's histories: the parent and the children it started (ChildWorkflowExecutionStarted events),
 * except the fleet lock. Every child must be closed (the parent waited for them).
 */
export async function fetchDeploymentHistories(client: ClientLike, workflowId: string): Promise<DeploymentHistories> {
  const { exec: parent, history } = await readExecution(client, workflowId, undefined, 'deployWorkflow');
  const started = (history.events ?? [])
    .map((e) => e.childWorkflowExecutionStartedEventAttributes)
    .filter((a): a is temporal.api.history.v1.IChildWorkflowExecutionStartedEventAttributes => !!a)
    .filter((a) => a.workflowType?.name !== 'fleetLockWorkflow' && !(a.workflowExecution?.workflowId ?? '').startsWith('fleet-lock-'));
  const children = await Promise.all(
    started.map(async (a) => (await readExecution(client, a.workflowExecution?.workflowId ?? '', a.workflowExecution?.runId ?? undefined, a.workflowType?.name ?? '?')).exec),
  );
  const waves = children.filter((c) => c.type === 'waveWorkflow');
  const merged: HistorySummary = {
    events: parent.events + children.reduce((s, c) => s + c.events, 0),
    workflowTaskTimings: waves.flatMap((c) => c.summary.workflowTaskTimings),
    startMs: parent.summary.startMs,
    closeMs: parent.summary.closeMs,
    workflowTasks: parent.summary.workflowTasks + children.reduce((s, c) => s + c.summary.workflowTasks, 0),
    activities: [parent, ...children].flatMap((x) => x.summary.activities).sort((a, b) => a.scheduled - b.scheduled),
  };
  return { parent, children, merged };
}

/** The child with the most events (Temporal's limits apply per execution). */
export function largestChild(d: DeploymentHistories): ExecutionHistory | undefined {
  return [...d.children].sort((a, b) => b.events - a.events)[0];
}
