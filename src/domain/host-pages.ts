/**
 * A deployment's state for readers at any fleet size (issue 13): a bounded summary (counts, not host
 * lists) and the hosts a page at a time, optionally one wave's or one state's. Pure functions of the
 * status the workflow answers today; the API serves them as GET /api/deployments/:id/summary and
 * GET /api/deployments/:id/hosts?page=…
 *
 * The workflow answers the same shapes itself (workflows/wave-report.ts: the `summary` and
 * `hostsPage` queries), so only a summary or a page crosses the wire; the service merges a running
 * wave child's hosts in (src/domain/live-child.ts). Deployments started before those queries are cut
 * here from their status.
 */
import type { DeploymentStatus, HostState, HostStatus } from './deployment';
import type { Transition } from './progress';

export const HOST_STATES: readonly HostState[] = ['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed'];

export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 100;

/** Hosts of the latest audit entry kept in the summary. */
export const AUDIT_HOSTS = 10;

/** Names each of the summary's host groups carries (the failed panel's lists: the first ones, and a count). */
export const GROUP_NAMES = 20;

type AuditEntry = DeploymentStatus['audit'][number];

function boundedEntry(e: AuditEntry): AuditEntry & { hostCount?: number } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) out[k] = typeof v === 'string' && v.length > 500 ? `${v.slice(0, 497)}...` : v;
  const hosts = (e as { hosts?: unknown }).hosts;
  if (Array.isArray(hosts)) {
    out.hosts = hosts.slice(0, AUDIT_HOSTS);
    out.hostCount = hosts.length;
  }
  return out as unknown as AuditEntry & { hostCount?: number };
}

export type StateCounts = Partial<Record<HostState, number>>;

export interface StatusSummary {
  deploymentId: string;
  /** Set by the API when the worker did not answer in time: this is its last answer, this many ms old. */
  staleMs?: number;
  phase: DeploymentStatus['phase'];
  repository: DeploymentStatus['repository'];
  change: DeploymentStatus['change'];
  mergeSha?: string;
  outcome?: DeploymentStatus['outcome'];
  failedHost?: string;
  failure?: string;
  revert?: DeploymentStatus['revert'];
  progressCursor?: number;
  /** The wave child running now, whose hosts a reader merges in (src/domain/live-child.ts). */
  liveChild?: string;
  hosts: { total: number; byState: StateCounts };
  /** Waves in order with their host counts (no host lists). */
  waves?: Array<{ name: string; state: NonNullable<DeploymentStatus['waves']>[number]['state']; total: number; byState: StateCounts }>;
  /** The audit trail's length and its latest entry (its host list cut to AUDIT_HOSTS, its texts to 500 characters). */
  audit: { entries: number; latest?: DeploymentStatus['audit'][number] & { hostCount?: number }; refusalsNotRecorded?: number };
  /**
   * The failed panel's host groups (the card's "Switch failed on / Successfully deployed / Not
   * attempted", and the rollback's), each its count and its first GROUP_NAMES hosts in deployment
   * order. Absent from answers of workers older than the groups.
   */
  groups?: Record<HostGroup, HostGroupSample>;
  /** The operator controls' state, its skipped hosts cut to GROUP_NAMES (skippedCount says how many). */
  controls?: Omit<NonNullable<DeploymentStatus['controls']>, 'skipped'> & { skipped: string[]; skippedCount: number };
  /** The maintenance-window wait, as in the status. */
  window?: DeploymentStatus['window'];
}

export type HostGroup = 'failed' | 'deployed' | 'notAttempted' | 'rolledBack' | 'rollbackFailed';
export interface HostGroupSample {
  count: number;
  /** The first hosts of the group (deployment order), with their error cut to 200 characters for the failed ones. */
  first: Array<{ name: string; error?: string }>;
}

const DEPLOYED_STATES: readonly HostState[] = ['switched', 'rolling-back', 'rolled-back', 'rollback-failed'];

/** Which of the failed panel's groups a host is in (a host can be in two: deployed, then rolled back). */
export function hostGroups(h: HostStatus, failedHost: string | undefined): HostGroup[] {
  const out: HostGroup[] = [];
  const failed = h.name === failedHost || h.state === 'failed';
  if (failed) out.push('failed');
  if (h.after !== undefined && !failed && DEPLOYED_STATES.includes(h.state)) out.push('deployed');
  if (h.state === 'not-attempted') out.push('notAttempted');
  if (h.state === 'rolled-back') out.push('rolledBack');
  if (h.state === 'rollback-failed') out.push('rollbackFailed');
  return out;
}

function groupSamples(s: DeploymentStatus): Record<HostGroup, HostGroupSample> {
  const out: Record<HostGroup, HostGroupSample> = { failed: { count: 0, first: [] }, deployed: { count: 0, first: [] }, notAttempted: { count: 0, first: [] }, rolledBack: { count: 0, first: [] }, rollbackFailed: { count: 0, first: [] } };
  for (const h of s.hosts) {
    for (const g of hostGroups(h, s.failedHost)) {
      const sample = out[g];
      sample.count += 1;
      if (sample.first.length < GROUP_NAMES) sample.first.push({ name: h.name, ...((g === 'failed' || g === 'rollbackFailed') && h.error !== undefined ? { error: h.error.slice(0, 200) } : {}) });
    }
  }
  return out;
}

function count(hosts: readonly HostStatus[]): StateCounts {
  const out: StateCounts = {};
  for (const h of hosts) out[h.state] = (out[h.state] ?? 0) + 1;
  return out;
}

/** The bounded summary: its size depends on the number of waves, never on the number of hosts. */
export function summarize(s: DeploymentStatus): StatusSummary {
  const byName = new Map(s.hosts.map((h) => [h.name, h]));
  const latest = s.audit[s.audit.length - 1];
  return {
    deploymentId: s.deploymentId,
    phase: s.phase,
    repository: s.repository,
    change: s.change,
    ...(s.mergeSha !== undefined ? { mergeSha: s.mergeSha } : {}),
    ...(s.outcome !== undefined ? { outcome: s.outcome } : {}),
    ...(s.failedHost !== undefined ? { failedHost: s.failedHost } : {}),
    ...(s.failure !== undefined ? { failure: s.failure.slice(0, 2000) } : {}),
    ...(s.revert !== undefined ? { revert: s.revert } : {}),
    ...(s.progressCursor !== undefined ? { progressCursor: s.progressCursor } : {}),
    ...(s.liveChild !== undefined ? { liveChild: s.liveChild } : {}),
    hosts: { total: s.hosts.length, byState: count(s.hosts) },
    ...(s.waves
      ? {
          waves: s.waves.map((w) => {
            const hosts = w.hosts.map((n) => byName.get(n)).filter((h): h is HostStatus => h !== undefined);
            return { name: w.name, state: w.state, total: w.hosts.length, byState: count(hosts) };
          }),
        }
      : {}),
    audit: { entries: s.audit.length, ...(latest ? { latest: boundedEntry(latest) } : {}), ...(s.refusalsNotRecorded ? { refusalsNotRecorded: s.refusalsNotRecorded } : {}) },
    groups: groupSamples(s),
    ...(s.controls ? { controls: { ...s.controls, skipped: s.controls.skipped.slice(0, GROUP_NAMES), skippedCount: s.controls.skipped.length } } : {}),
    ...(s.window ? { window: s.window } : {}),
  };
}

/**
 * The live feed's bounded answer (the workflow's `progressSummarySince` query): the transitions after
 * the asked cursor (bounded by the ring), and the summary as of `cursor` in place of the whole status.
 */
export interface SummaryProgressPage {
  cursor: number;
  oldest: number;
  events: Transition[];
  summary: StatusSummary;
}

export interface HostPageQuery {
  /** 1-based. */
  page: number;
  pageSize: number;
  state?: HostState;
  wave?: string;
}

export interface HostPage {
  deploymentId: string;
  /** Set by the API when the worker did not answer in time: this is its last answer, this many ms old. */
  staleMs?: number;
  phase: DeploymentStatus['phase'];
  page: number;
  pageSize: number;
  /** Hosts matching the filter. */
  total: number;
  pages: number;
  /** The status's cursor the page is as of (the live feed's transitions after it update it). */
  progressCursor?: number;
  hosts: HostStatus[];
}

/** The hosts of page `page` (in deployment order) among those matching the filter. A page past the end is empty. */
export function pageHosts(s: DeploymentStatus, q: HostPageQuery): HostPage {
  let hosts: readonly HostStatus[] = s.hosts;
  if (q.wave !== undefined) {
    const inWave = new Set(s.waves?.find((w) => w.name === q.wave)?.hosts ?? []);
    hosts = hosts.filter((h) => inWave.has(h.name));
  }
  if (q.state !== undefined) hosts = hosts.filter((h) => h.state === q.state);
  const start = (q.page - 1) * q.pageSize;
  return {
    deploymentId: s.deploymentId,
    phase: s.phase,
    page: q.page,
    pageSize: q.pageSize,
    total: hosts.length,
    pages: Math.ceil(hosts.length / q.pageSize),
    ...(s.progressCursor !== undefined ? { progressCursor: s.progressCursor } : {}),
    hosts: hosts.slice(start, start + q.pageSize),
  };
}

/**
 * A page request as a workflow query takes it from outside: a whole page number of at least 1, a
 * page size within 1..MAX_PAGE_SIZE (so no query answers more than a page), filters as given.
 */
export function boundedPageQuery(q: Partial<HostPageQuery> | null | undefined): HostPageQuery {
  const int = (v: unknown, dflt: number): number => (typeof v === 'number' && Number.isSafeInteger(v) ? v : dflt);
  const page = Math.max(1, int(q?.page, 1));
  const pageSize = Math.min(MAX_PAGE_SIZE, Math.max(1, int(q?.pageSize, DEFAULT_PAGE_SIZE)));
  return {
    page,
    pageSize,
    ...(typeof q?.state === 'string' && (HOST_STATES as readonly string[]).includes(q.state) ? { state: q.state } : {}),
    ...(typeof q?.wave === 'string' ? { wave: q.wave.slice(0, 200) } : {}),
  };
}

/** How many of the hosts that matter an action's answer lists (control, dismiss, start-now). */
export const ACTION_HOSTS = 20;
/** The states an operator looks at after acting: failed, or in flight. */
export const ACTION_STATES: readonly HostState[] = ['switching', 'failed', 'rolling-back', 'rollback-failed'];

/** The hosts that matter after an action: the first `limit` failed or in flight, in deployment order, and how many there are in all. Linear. */
export function actionHosts(hosts: readonly HostStatus[], limit = ACTION_HOSTS): { hosts: HostStatus[]; total: number } {
  const out: HostStatus[] = [];
  let total = 0;
  for (const h of hosts) {
    if (!ACTION_STATES.includes(h.state)) continue;
    total += 1;
    if (out.length < limit) out.push(h);
  }
  return { hosts: out, total };
}
