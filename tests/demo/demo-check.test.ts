import type { DeploymentStatus, HostStatus } from '../../src/domain/deployment';
import { checkDemo } from '../../scripts/demo-check';

const h = (name: string, state: HostStatus['state'], before?: number, after?: number): HostStatus => ({
  name,
  kind: name === 'alice' ? 'home-manager' : 'nixos',
  state,
  ...(before ? { before: { number: before, storePath: `/nix/store/${'a'.repeat(32)}-${name}-${before}` } } : {}),
  ...(after ? { after: { number: after, storePath: `/nix/store/${'a'.repeat(32)}-${name}-${after}` } } : {}),
});
const sp = (tag: string) => `/nix/store/${'a'.repeat(32)}-${tag}`;
const g = (tag: string, number: number) => ({ number, storePath: sp(tag) });
const failing = (): { status: DeploymentStatus; generationNow: Record<string, { number: number; storePath: string }>; commitsAfterMerge: string[] } => ({
  status: {
    deploymentId: 'd',
    phase: 'awaiting-operator',
    outcome: 'failed-rolled-back',
    failedHost: 'hsb1',
    hosts: [h('gpc0', 'rolled-back', 42, 43), h('hsb0', 'rolled-back', 18, 19), h('alice', 'rolled-back', 9, 10), h('hsb1', 'rolled-back', 42, 43), h('csb0', 'not-attempted')],
  } as DeploymentStatus,
  // alice (Home Manager) came back as a new generation 11 pointing at generation 9's store path.
  generationNow: { gpc0: g('gpc0-42', 42), hsb0: g('hsb0-18', 18), alice: g('alice-9', 11), hsb1: g('hsb1-42', 42), csb0: g('csb0-100', 100) },
  commitsAfterMerge: ['Revert "Merge pull request #1 from demo/lock-v2"'],
});

test('when the demo did what README says, then the check finds nothing', () => {
  expect(checkDemo('failing', failing())).toEqual([]);
});

test('when a host reported rolled back is still on the new generation, then the check says so', () => {
  const o = failing();
  o.generationNow.hsb0 = g('hsb0-19', 19);
  expect(checkDemo('failing', o)).toEqual([`hsb0 runs generation 19 (${sp('hsb0-19')}), not its recorded generation 18`]);
});

test('when csb0 was attempted, the revert is missing or doubled, or the outcome differs, then each is named', () => {
  const o = failing();
  o.status.hosts[4] = h('csb0', 'switched', 100, 101);
  o.status.outcome = 'failed-rollback-incomplete';
  expect(checkDemo('failing', o)).toEqual(['outcome is failed-rollback-incomplete, not failed-rolled-back', 'csb0 is switched, not not-attempted']);
  expect(checkDemo('failing', { ...failing(), commitsAfterMerge: [] })).toEqual(['0 revert commits on the branch after the merge, expected exactly one']);
  expect(checkDemo('failing', { ...failing(), commitsAfterMerge: ['Revert "a"', 'Revert "a"'] })).toEqual(['2 revert commits on the branch after the merge, expected exactly one']);
});

test('when the healthy demo left a host behind, then the check names it', () => {
  const status = { deploymentId: 'd', phase: 'succeeded', outcome: 'succeeded', hosts: [h('gpc0', 'switched', 42, 43), h('csb0', 'failed', 100)] } as DeploymentStatus;
  expect(checkDemo('healthy', { status, generationNow: { gpc0: g('gpc0-43', 43), csb0: g('csb0-100', 100) }, commitsAfterMerge: [] })).toEqual(['csb0 is failed, not switched']);
  expect(checkDemo('healthy', { status, generationNow: { gpc0: g('gpc0-42', 42), csb0: g('csb0-100', 100) }, commitsAfterMerge: [] })).toContain(`gpc0 runs generation 42 (${sp('gpc0-42')}), not generation 43`);
});
