/**
 * How long the deployer's GC roots and switch markers of another deployment are kept on a host before
 * a later deployment's record step sweeps them. Pure: no I/O.
 *
 * A deployment removes its own roots and markers when it closes (releaseHost). A close that never
 * reached a host (unreachable then, the worker gone for good, the workflow terminated) leaves them
 * behind, and they would pin their store paths forever. A root may go only once its deployment can
 * no longer need it: a deployment holds its roots while it runs and then through its manual window,
 * which the fleet file bounds (MAX_MANUAL_WINDOW_SECONDS). The host's own clock ages the entries (the
 * link's or the file's mtime, set when it was written), so no clock of the deployer's is compared
 * with the host's.
 *
 * Why an age and not "any other deployment": the fleet lock lets no two deployments of one fleet run
 * at once, but a host may belong to two fleet files (two repositories), whose deployments the worker
 * cannot tell apart from stale ones by name alone; the age bound is safe for those too.
 */

/** The longest manual window a fleet file accepts (its `manualWindow` duration is at most 30 days). */
export const MAX_MANUAL_WINDOW_SECONDS = 30 * 24 * 3600;
/** Room for the rollout itself (waves, bakes, long builds) before the manual window starts. */
export const ROLLOUT_ALLOWANCE_SECONDS = 7 * 24 * 3600;

/** Roots and markers of other deployments older than this are swept at record time. */
export function gcSweepAgeSeconds(): number {
  return MAX_MANUAL_WINDOW_SECONDS + ROLLOUT_ALLOWANCE_SECONDS;
}
