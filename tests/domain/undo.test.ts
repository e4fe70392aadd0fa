import { confirmRejectReason, resultsFromRef, retainedUntil, undoPlan, undoSummary, undoWorkflowId, type DeploymentResults, type UndoFacts } from '../../src/domain/undo';

const g = (n: number, h: string) => ({ number: n, storePath: `/nix/store/${h}-${n}` });
const results = (over: Partial<DeploymentResults> = {}): DeploymentResults => ({
  deploymentId: 'deploy-acme.fleet.pr7',
  runId: 'run-1',
  repository: 'acme/fleet',
  branch: 'main',
  closedAt: '2026-12-01T03:00:00.000Z',
  outcome: 'succeeded',
  mergeSha: 'a'.repeat(40),
  ownMerge: true,
  pullRequest: 7,
  hosts: [
    { name: 'gpc0', kind: 'nixos', state: 'switched', before: g(42, 'gpc0'), after: g(43, 'gpc0') },
    { name: 'hsb0', kind: 'nixos', state: 'switched', before: g(42, 'hsb0'), after: g(43, 'hsb0') },
    { name: 'csb0', kind: 'nixos', state: 'held' },
  ],
  ...over,
});
const facts = (over: Partial<UndoFacts> = {}): UndoFacts => ({
  results: results(),
  fleet: { repository: 'acme/fleet', branch: 'main' },
  now: '2026-12-02T09:00:00.000Z',
  retentionDays: 14,
  current: { gpc0: { inFleet: true, generation: g(43, 'gpc0') }, hsb0: { inFleet: true, generation: g(43, 'hsb0') } },
  forced: [],
  merge: { kind: 'on-branch' },
  ...over,
});

describe('undoPlan', () => {
  test('when every switched host is still on the deployment generation, then all go back, last deployed first, and the merge is reverted', () => {
    const d = undoPlan(facts());
    expect(d).toMatchObject({ ok: true, plan: { hosts: [{ name: 'hsb0', to: g(42, 'hsb0'), forced: false }, { name: 'gpc0', to: g(42, 'gpc0') }], revert: { needed: true } } });
    if (d.ok) expect(d.plan.skipped).toEqual([expect.objectContaining({ name: 'csb0', why: 'not-switched' })]);
  });

  test('when a host changed since, then it is listed and left alone, unless named', () => {
    const f = facts({ current: { gpc0: { inFleet: true, generation: g(44, 'gpc0') }, hsb0: { inFleet: true, generation: g(43, 'hsb0') } } });
    const d = undoPlan(f);
    expect(d.ok && d.plan.hosts.map((h) => h.name)).toEqual(['hsb0']);
    expect(d.ok && d.plan.skipped.find((s) => s.name === 'gpc0')).toMatchObject({ why: 'changed-since', now: g(44, 'gpc0') });
    const named = undoPlan({ ...f, forced: ['gpc0'] });
    expect(named.ok && named.plan.hosts.map((h) => [h.name, h.forced])).toEqual([['hsb0', false], ['gpc0', true]]);
  });

  test('a host already back, unreadable or gone from the fleet file is left alone, with why', () => {
    const d = undoPlan(facts({ current: { gpc0: { inFleet: true, generation: g(42, 'gpc0') }, hsb0: { inFleet: true, error: 'connection refused' } } }));
    expect(d).toMatchObject({ ok: true, plan: { hosts: [] } });
    expect(d.ok && d.plan.skipped.map((s) => [s.name, s.why])).toEqual([['csb0', 'not-switched'], ['hsb0', 'unreadable'], ['gpc0', 'already-back']]);
    const gone = undoPlan(facts({ current: { gpc0: { inFleet: true, generation: g(43, 'gpc0') }, hsb0: { inFleet: false } } }));
    expect(gone.ok && gone.plan.skipped.find((s) => s.name === 'hsb0')?.why).toBe('not-in-fleet');
  });

  test.each([
    ['no-record', facts({ results: undefined })],
    ['wrong-fleet', facts({ fleet: { repository: 'acme/other', branch: 'main' } })],
    ['wrong-fleet', facts({ fleet: { repository: 'acme/fleet', branch: 'release' } })],
    ['not-successful', facts({ results: results({ outcome: 'failed-rolled-back' }) })],
    ['outside-retention', facts({ now: '2026-12-15T03:00:00.001Z' })],
    ['fleet-busy', facts({ fleetHeldBy: 'deploy-acme.fleet.pr8' })],
    ['unknown-host', facts({ forced: ['csb0'] })],
    ['unknown-host', facts({ forced: ['nope'] })],
    ['nothing-left', facts({ merge: { kind: 'reverted' }, current: { gpc0: { inFleet: true, generation: g(42, 'gpc0') }, hsb0: { inFleet: true, generation: g(42, 'hsb0') } } })],
  ])('refused: %s', (code, f) => {
    const d = undoPlan(f);
    expect(d).toMatchObject({ ok: false, refusal: { code } });
    if (!d.ok) expect(d.refusal.reason.length).toBeGreaterThan(10);
  });

  test('the last moment of the retention period is still within it; a record with an unreadable time is outside', () => {
    expect(undoPlan(facts({ now: '2026-12-15T03:00:00.000Z' })).ok).toBe(true);
    expect(undoPlan(facts({ results: results({ closedAt: 'garbage' }) }))).toMatchObject({ ok: false, refusal: { code: 'outside-retention' } });
    expect(retainedUntil('2026-12-01T03:00:00.000Z', 14)).toBe('2026-12-15T03:00:00.000Z');
  });

  test('the merge: reverted already, or a commit deploy, is not reverted (and says so); unknown is left to the revert, which reads the branch', () => {
    const reverted = undoPlan(facts({ merge: { kind: 'reverted', by: 'revert commit b' } }));
    expect(reverted.ok && reverted.plan.revert).toMatchObject({ needed: false, note: expect.stringMatching(/no longer on the branch/) });
    const commit = undoPlan(facts({ results: results({ ownMerge: false }) }));
    expect(commit.ok && commit.plan.revert).toMatchObject({ needed: false, note: expect.stringMatching(/commit deploy/) });
    const unknown = undoPlan(facts({ merge: { kind: 'unknown', error: '502' } }));
    expect(unknown.ok && unknown.plan.revert.needed).toBe(true);
  });
});

test('confirmRejectReason names the field, and refuses once the undo no longer waits', () => {
  expect(confirmRejectReason({ action: 'confirm' }, 'awaiting-confirmation')).toMatch(/^requestedBy/);
  expect(confirmRejectReason({ action: 'go', requestedBy: 'a' }, 'awaiting-confirmation')).toMatch(/^action/);
  expect(confirmRejectReason({ action: 'confirm', requestedBy: 'a', revertMode: 'force' }, 'awaiting-confirmation')).toMatch(/^revertMode/);
  expect(confirmRejectReason({ action: 'confirm', requestedBy: 'x'.repeat(201) }, 'awaiting-confirmation')).toMatch(/at most 200/);
  expect(confirmRejectReason(null, 'awaiting-confirmation')).toMatch(/object/);
  expect(confirmRejectReason({ action: 'confirm', requestedBy: 'a' }, 'done')).toMatch(/not awaiting/);
  expect(confirmRejectReason({ action: 'cancel', requestedBy: 'a' }, 'awaiting-confirmation')).toBeUndefined();
});

test('undoWorkflowId: one per deployment run, distinct for distinct deployments and runs', () => {
  expect(undoWorkflowId('deploy-acme.fleet.pr7', '0193a1b2-0000-7000-8000-00000000000a')).toBe('undo-deploy-acme_2efleet_2epr7.0193a1b20000');
  expect(undoWorkflowId('a', 'run-1')).not.toBe(undoWorkflowId('a', 'run-2'));
});

test('undoSummary says what was reverted, rolled back, failed and left alone', () => {
  expect(undoSummary({ kind: 'commit', commitSha: 'b'.repeat(40), alreadyReverted: false }, '', ['hsb0'], ['gpc0'], [{ name: 'csb0', why: 'changed-since', detail: '' }])).toBe(
    'reverted by bbbbbbbbbbbb; rolled back: hsb0; rollback failed: gpc0; left alone: csb0 (changed-since)',
  );
  expect(undoSummary(undefined, 'a commit deploy', [], [], [])).toBe('not reverted: a commit deploy; no host rolled back');
});

describe('resultsFromRef (the results record by reference)', () => {
  const gen = (n: number) => ({ number: n, storePath: `/nix/store/${'a'.repeat(32)}-nixos-system-${n}` });
  const ref = {
    deploymentId: 'dep-1',
    runId: 'run-1',
    repository: 'acme/fleet',
    branch: 'main',
    closedAt: '2026-12-02T00:00:00.000Z',
    outcome: 'succeeded' as const,
    ownMerge: true,
    hostsFrom: { workflowId: 'dep-1', count: 2, first: 'a', last: 'b' },
  };
  const rows = [
    { name: 'a', kind: 'nixos' as const, state: 'switched' as const, before: gen(1), after: gen(2), error: 'ignored', wave: 'w1' },
    { name: 'b', kind: 'home-manager' as const, state: 'not-attempted' as const },
  ];

  test('when the hosts read match the reference, then the record is the reference with the hosts, each cut to its results row', () => {
    const r = resultsFromRef(ref, rows);
    expect(r).toEqual({ ...ref, hostsFrom: undefined, hosts: [{ name: 'a', kind: 'nixos', state: 'switched', before: gen(1), after: gen(2) }, { name: 'b', kind: 'home-manager', state: 'not-attempted' }] });
    expect('hostsFrom' in r).toBe(false);
  });

  test.each([
    ['fewer hosts', rows.slice(0, 1), /1 hosts read where the deployment has 2/],
    ['other ends', [rows[1]!, rows[0]!], /run from b to a, not from a to b/],
    ['a host twice', [rows[0]!, { ...rows[0]!, name: 'x' }, rows[1]!], /3 hosts read/],
  ])('when the hosts read are %s, then it throws and writes nothing', (_what, hosts, message) => {
    expect(() => resultsFromRef(ref, hosts)).toThrow(message);
  });

  test('when a host appears twice with the right count and ends, then it throws', () => {
    const three = { ...ref, hostsFrom: { ...ref.hostsFrom, count: 3 } };
    expect(() => resultsFromRef(three, [rows[0]!, rows[0]!, rows[1]!])).toThrow(/a host appears twice/);
  });
});
