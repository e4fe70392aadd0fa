import type { DeploymentStatus, HostState, HostStatus } from '../../src/domain/deployment';

/**
 * A running deployment's status of `n` NixOS hosts (host-00000…) in `waves` waves, the first running:
 * the size tests of the live feed and the CLI's follow build their fleets from it.
 */
export function bigStatus(n: number, waves: number, extra: Partial<DeploymentStatus> = {}): DeploymentStatus {
  const hosts: HostStatus[] = Array.from({ length: n }, (_, i) => ({ name: `host-${String(i).padStart(5, '0')}`, kind: 'nixos', state: 'pending' as HostState }));
  const per = Math.ceil(n / waves);
  return {
    deploymentId: 'd1',
    phase: 'deploying',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 1 },
    hosts,
    waves: Array.from({ length: waves }, (_, w) => ({ name: `w${w + 1}`, hosts: hosts.slice(w * per, (w + 1) * per).map((h) => h.name), state: w === 0 ? ('running' as const) : ('pending' as const) })),
    audit: [],
    ...extra,
  } as DeploymentStatus;
}
