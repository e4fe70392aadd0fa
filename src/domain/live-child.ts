/**
 * Live progress while a wave's child runs (issue 13): the deployment's own status learns a child's
 * hosts only when the child completes (its records come in its result), so a reader merges in the
 * running child's hosts (its `waveHosts` query; the child is `status.liveChild`). Pure: no I/O.
 *
 * A running child's hosts are `pending` in the deployment's status until it completes (nothing else
 * moves them), so the summary's counts move each merged host from pending to its state.
 */
import type { DeploymentStatus, HostStatus } from './deployment';
import type { HostPage, StatusSummary } from './host-pages';

/** One host as the running child reports it (its fields so far). */
export type LiveHost = Partial<HostStatus> & { name: string };

/** The status with the child's hosts overlaid (a copy; linear in hosts + updates). */
export function mergeLiveHosts(s: DeploymentStatus, live: readonly LiveHost[]): DeploymentStatus {
  if (live.length === 0) return s;
  const byName = new Map(live.map((u) => [u.name, u]));
  return { ...s, hosts: s.hosts.map((h) => overlay(h, byName.get(h.name))) };
}

/** A page with the child's hosts overlaid (a host the page does not hold is not added). */
export function mergeLivePage(p: HostPage, live: readonly LiveHost[]): HostPage {
  if (live.length === 0) return p;
  const byName = new Map(live.map((u) => [u.name, u]));
  return { ...p, hosts: p.hosts.map((h) => overlay(h, byName.get(h.name))) };
}

/** The summary's counts with the child's hosts moved from pending to their state (in total and in `wave`). */
export function mergeLiveSummary(sum: StatusSummary, wave: string | undefined, live: readonly LiveHost[]): StatusSummary {
  const moved = live.filter((u) => u.state !== undefined && u.state !== 'pending');
  if (moved.length === 0) return sum;
  const shift = (byState: StatusSummary['hosts']['byState']): StatusSummary['hosts']['byState'] => {
    const out = { ...byState };
    for (const u of moved) {
      const st = u.state as NonNullable<LiveHost['state']>;
      if ((out.pending ?? 0) <= 0) break;
      out.pending = (out.pending ?? 0) - 1;
      if (out.pending === 0) delete out.pending;
      out[st] = (out[st] ?? 0) + 1;
    }
    return out;
  };
  return {
    ...sum,
    hosts: { ...sum.hosts, byState: shift(sum.hosts.byState) },
    ...(sum.waves ? { waves: sum.waves.map((w) => (w.name === wave ? { ...w, byState: shift(w.byState) } : w)) } : {}),
  };
}

function overlay(h: HostStatus, u: LiveHost | undefined): HostStatus {
  if (!u || h.state !== 'pending') return h;
  return { ...h, ...u, name: h.name, kind: h.kind };
}
