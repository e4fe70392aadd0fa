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

/** Activity timings (server clock) and counts from a fetched history. */
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
