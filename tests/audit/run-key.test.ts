/**
 * Issue 12 bug 4 (the store's side): deployment ids are reused once a run has closed
 * (`deploy-<owner>.<repo>.pr<N>`, src/domain/ids.ts), so a second run of the same deployment writes
 * seq 1, 2, … again. Keyed by (deployment, seq), the store kept the first run's entries and silently
 * dropped the second's. Keyed by (deployment, run, seq), both runs are kept, in order, each with its run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createActivities } from '../../activities';
import type { AuditRecord } from '../../src/audit/audit-store';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import type { AuditEntry } from '../../src/domain/deployment';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-audit-runs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const DEPLOYMENT = 'deploy-acme.fleet.pr7';
const RUN_1 = '0193a1b2-0000-7000-8000-000000000001';
const RUN_2 = '0193a1b2-0000-7000-8000-000000000002';

const entry = (at: string, actor: string, action: AuditEntry['action'], outcome: string): AuditEntry => ({ at, actor, action, hosts: [], outcome });
/** Two runs of one deployment id: the first dismissed, the second (after it closed) reverted. */
const run1 = [entry('2026-12-01T10:00:00.000Z', 'olga', 'deploy', 'started'), entry('2026-12-01T10:00:01.000Z', 'olga', 'merge', 'merged'), entry('2026-12-01T10:05:00.000Z', 'olga', 'dismiss', 'dismissed')];
const run2 = [entry('2026-12-01T11:00:00.000Z', 'peter', 'deploy', 'started again'), entry('2026-12-01T11:00:01.000Z', 'peter', 'merge', 'merged again'), entry('2026-12-01T11:09:00.000Z', 'peter', 'revert', 'reverted in abc')];

const summary = (r: AuditRecord): string => `${r.runId ?? '-'} #${r.seq} ${r.actor} ${r.action}`;
const expected = [...run1.map((e, i) => `${RUN_1} #${i + 1} ${e.actor} ${e.action}`), ...run2.map((e, i) => `${RUN_2} #${i + 1} ${e.actor} ${e.action}`)];

test('when a deployment id is reused by a second run, then the store keeps both runs, in order, each with its run', async () => {
  const store = new SqliteAuditStore(join(dir, 'audit.db'));
  for (const [runId, entries] of [[RUN_1, run1], [RUN_2, run2]] as const) {
    for (const [i, e] of entries.entries()) await store.append({ ...e, deploymentId: DEPLOYMENT, runId, seq: i + 1, repository: 'acme/fleet' });
  }
  expect((await store.list({ deploymentId: DEPLOYMENT })).map(summary)).toEqual(expected);
  expect((await store.list()).map(summary)).toEqual(expected);
  await store.close();
});

test('when the recordAudit activity is given the run, then a second run of the deployment loses nothing', async () => {
  const store = new SqliteAuditStore(join(dir, 'audit.db'));
  const { activities, close } = createActivities({ github: {} as never, ssh: { privateKey: '', knownHosts: '' }, logger: pino({ level: 'silent' }), audit: store });
  try {
    for (const [runId, entries] of [[RUN_1, run1], [RUN_2, run2]] as const) {
      // The workflow writes a run's entries in parallel; a retried one arrives twice.
      await Promise.all(entries.map((e, i) => activities.recordAudit({ deploymentId: DEPLOYMENT, runId, seq: i + 1, repository: 'acme/fleet', entry: e })));
      await activities.recordAudit({ deploymentId: DEPLOYMENT, runId, seq: 1, repository: 'acme/fleet', entry: entries[0] as AuditEntry });
    }
    expect((await store.list({ deploymentId: DEPLOYMENT })).map(summary)).toEqual(expected);
  } finally {
    await close();
    await store.close();
  }
});
