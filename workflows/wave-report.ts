/**
 * How a wave's child workflow reports its hosts to the deployment (issue 13, item 2): no signal per
 * host. The child keeps its hosts' records, in the order the transitions happened, answers a query
 * with them while it runs (the service merges them into the deployment's status for live progress),
 * and returns them in its result; the deployment applies them when the child completes. Nothing from
 * outside can send one: the rollback target (`before`) comes only from a child's result, or, when a
 * child ended without its result, from the host's own GC root (recoverSlice).
 *
 * Deployments started before this (no `patched('a-bounded-child-records')` marker) keep the
 * `hostUpdate` signal: their children are started without `report: 'result'` and keep signalling.
 */
import { CancellationScope, setHandler } from '@temporalio/workflow';
import type { HostSpec, HostStatus } from '../src/domain/deployment';
import { boundedPageQuery, pageHosts, summarize } from '../src/domain/host-pages';
import { recoveryOf } from '../src/domain/wave-recovery';
import { failureOf, hostStepFor, pool, type HostUpdate } from './common';
import type { DeploymentRecord } from './deployment-state';
import { hostsPageQuery, progressSummarySinceQuery, summaryQuery, waveHostsQuery } from './report-messages';

/** The patch id: new deployments take no per-host signal and read their waves' results. */
export const CHILD_RECORDS_PATCH = 'a-bounded-child-records';

/** The fields a host record may carry (nothing else of a host's status is a wave's to set). */
const RECORD_FIELDS = ['state', 'before', 'after', 'error', 'uncertain', 'profileMoved', 'warning', 'wave', 'reboot', 'offline'] as const;


/** The wave child's side: records in order, and the query over them. */
export class WaveLedger {
  readonly records: HostUpdate[] = [];
  private readonly live = new Map<string, HostUpdate>();

  constructor() {
    setHandler(waveHostsQuery, () => ({ hosts: [...this.live.values()] }));
  }

  add(u: HostUpdate): void {
    this.records.push(u);
    this.live.set(u.name, { ...this.live.get(u.name), ...u });
  }
}

/** Applies one record to the deployment's host (its own fields only) and numbers the transition. */
export function applyHostRecord(d: DeploymentRecord, u: HostUpdate): void {
  const h = d.host(u.name);
  if (!h) return;
  const from = h.state;
  const target = h as unknown as Record<string, unknown>;
  for (const k of RECORD_FIELDS) if (u[k] !== undefined) target[k] = u[k];
  d.hostMoved(h, from);
}

/** A completed child's records, in order (one details refresh for the lot: linear in the hosts). */
export function applyChildRecords(d: DeploymentRecord, records: readonly HostUpdate[] | undefined): void {
  if (!records) return;
  d.batch(() => {
    for (const u of records) applyHostRecord(d, u);
  });
}

/**
 * A wave's child ended without its result: every host of its slice is re-read (its generation now,
 * and the one this deployment pinned at record time). Those that moved are failed with the recorded
 * generation as their rollback target; those recorded but not moved were not changed (not attempted,
 * their pin released at the close); those never recorded stay pending; those that cannot be read are
 * failed as uncertain. Returns the first host that moved (or could not be read), in slice order.
 */
export async function recoverSlice(d: DeploymentRecord, slice: HostSpec[], maxParallel: number, error: string): Promise<HostStatus | undefined> {
  const moved: Array<HostStatus | undefined> = new Array<HostStatus | undefined>(slice.length);
  const indexed = slice.map((spec, i) => ({ spec, i }));
  await CancellationScope.nonCancellable(() =>
    pool(indexed, maxParallel, async ({ spec, i }) => {
      const h = d.host(spec.name);
      if (!h || (h.state !== 'pending' && h.state !== 'switching')) return;
      const read = await d
        .step(hostStepFor('read', spec), `${spec.name}/reread`, `re-read ${spec.name}'s generation and this deployment's pin after its wave ended`)
        .rereadRecorded({ deploymentId: d.input.deploymentId, host: spec })
        .catch((err: unknown) => ({ error: failureOf(err).message }));
      const r = recoveryOf(read);
      const from = h.state;
      switch (r.kind) {
        case 'untouched':
          return;
        case 'unmoved':
          h.before = r.recorded;
          h.warning = `recorded, and still on generation ${r.current.number} when its wave's workflow ended (${error})`;
          h.state = 'not-attempted';
          break;
        case 'moved':
          h.before = r.recorded;
          h.after = r.current;
          h.profileMoved = true;
          h.uncertain = `the wave's workflow ended while this host was being deployed (${error})`;
          h.error = `wave workflow failed: ${error}`;
          h.state = 'failed';
          moved[i] = h;
          break;
        case 'unreadable':
          h.uncertain = `the wave's workflow ended and the host could not be read: ${r.error}`;
          h.error = `wave workflow failed: ${error}; the host could not be read: ${r.error}`;
          h.state = 'failed';
          moved[i] = h;
          break;
      }
      d.hostMoved(h, from);
    }),
  );
  return moved.find((h) => h !== undefined);
}

/** The deployment's bounded reads: the summary and pages of hosts, cut in the workflow (linear). */
export function registerPageQueries(d: DeploymentRecord): void {
  setHandler(summaryQuery, () => summarize(d.status));
  setHandler(hostsPageQuery, (q) => pageHosts(d.status, boundedPageQuery(q)));
  setHandler(progressSummarySinceQuery, (since) => {
    const p = d.transitions.page(since, d.status);
    return { cursor: p.cursor, oldest: p.oldest, events: p.events, summary: summarize(d.status) };
  });
}
