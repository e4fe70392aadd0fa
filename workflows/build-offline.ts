import { offlineBuildGates, type OfflineGate } from '../src/domain/offline';
import type { DeploymentRecord } from './deployment-state';

/**
 * The build-first phase's offline hosts on the deployment's record (the rule: offlineBuildGates in
 * src/domain/offline.ts): a skipped host is not attempted and says why (the waves leave it out,
 * offlineSkipped); a failed one is a build failure with the probe's reason.
 */
export function applyOfflineGates(d: DeploymentRecord, gates: readonly OfflineGate[] | undefined): Array<{ host: string; error: string }> {
  if (!gates || gates.length === 0) return [];
  const { skipped, failures } = offlineBuildGates(gates);
  d.batch(() => {
    for (const s of skipped) {
      const h = d.host(s.host);
      if (!h) continue;
      h.offline = s.reason;
      d.moveHost(h, 'not-attempted');
    }
  });
  for (const f of failures) {
    const h = d.host(f.host);
    if (h) h.offline = f.error;
  }
  return failures;
}

/** A host the build phase skipped as offline: the waves do not deploy it. */
export function offlineSkipped(d: DeploymentRecord, name: string): boolean {
  const h = d.host(name);
  return h?.state === 'not-attempted' && h.offline !== undefined;
}

