/**
 * `storableAuditEntry` (src/domain/audit.ts): every entry the workflow writes is bounded first, so the
 * store never refuses one. Unit tests for the cases the issue names, fast-check for any entry at all,
 * checked against the real SQLite store (what it takes comes back unchanged).
 */
import fc from 'fast-check';
import { AuditRecordRefusedError } from '../../src/audit/audit-store';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { AUDIT_ACTIONS, AUDIT_LIMITS, clip, storableAuditEntry, type RawAuditEntry } from '../../src/domain/audit';

const AT = '2026-12-01T10:00:00.000Z';
const valid = { at: AT, actor: 'alice', action: 'revert-and-rollback', reverted: 'a'.repeat(40), hosts: ['hsb1', 'hsb0'], outcome: 'reverted in aaaaaaaaaaaa; rolled back: hsb1, hsb0' };

let store: SqliteAuditStore;
let seq = 0;
beforeAll(() => {
  store = new SqliteAuditStore(':memory:');
});
afterAll(async () => {
  await store.close();
});
const roundTrip = async (raw: RawAuditEntry) => {
  seq += 1;
  const entry = storableAuditEntry(raw);
  await store.append({ ...entry, deploymentId: 'deploy-acme-fleet-pr1', seq, repository: 'acme/fleet' });
  const back = (await store.list({ deploymentId: 'deploy-acme-fleet-pr1', limit: 10_000 })).find((r) => r.seq === seq);
  return { entry, back };
};

test('when an entry is within the limits, then it is written unchanged', async () => {
  const { entry, back } = await roundTrip(valid);
  expect(entry).toEqual(valid);
  expect(back).toMatchObject(valid);
});

test('when a signal carries an unknown action (the issue: "rm -rf /"), then the entry is an invalid-request and the store takes it', async () => {
  const { entry, back } = await roundTrip({ at: AT, actor: 'mallory', action: 'rm -rf /', hosts: [], outcome: 'rejected: action: must be revert, revert-and-rollback or dismiss (got "rm -rf /")' });
  expect(entry.action).toBe('invalid-request');
  expect(back?.outcome).toContain('"rm -rf /"');
  // The raw entry is exactly what the store refused before: refused with a typed error.
  await expect(store.append({ at: AT, actor: 'mallory', action: 'rm -rf /' as 'dismiss', hosts: [], outcome: 'x', deploymentId: 'd', seq: 1, repository: 'a/b' })).rejects.toThrow(AuditRecordRefusedError);
});

test('when the actor is over 200 characters, missing, not a string or several lines, then it is one line within 200 characters that says it was cut', async () => {
  const long = storableAuditEntry({ ...valid, actor: 'm'.repeat(300) });
  expect(long.actor.length).toBeLessThanOrEqual(AUDIT_LIMITS.actor);
  expect(long.actor).toMatch(/^m{150,}…\[300 chars\]$/);
  expect(storableAuditEntry({ ...valid, actor: undefined }).actor).toBe('unknown');
  expect(storableAuditEntry({ ...valid, actor: { evil: true } }).actor).toBe('unknown');
  expect(storableAuditEntry({ ...valid, actor: '   ' }).actor).toBe('unknown');
  expect(storableAuditEntry({ ...valid, actor: 'eve\nalice' }).actor).toBe('eve alice');
});

test('when the outcome names about 450 hosts (over 10,000 characters), then it is summarized within 10,000 and the hosts list stays whole', async () => {
  const hosts = Array.from({ length: 450 }, (_, i) => `host-${String(i).padStart(3, '0')}.dc1.example.net`);
  const outcome = `no revert; rolled back: ${hosts.join(', ')}`;
  expect(outcome.length).toBeGreaterThan(10_000);
  const { entry, back } = await roundTrip({ ...valid, hosts, outcome });
  expect(entry.outcome.length).toBeLessThanOrEqual(AUDIT_LIMITS.outcome);
  expect(entry.outcome.startsWith(outcome.slice(0, 9_000))).toBe(true);
  expect(entry.outcome.endsWith(`…[${outcome.length} chars]`)).toBe(true);
  expect(back?.hosts).toEqual(hosts);
});

test('when an outcome holds NUL (which PostgreSQL text refuses), then it becomes U+FFFD and every store takes it', async () => {
  const { entry, back } = await roundTrip({ ...valid, outcome: 'halted:\u0000 exit 4\nline two' });
  expect(entry.outcome).toBe('halted:\ufffd exit 4\nline two');
  expect(back?.outcome).toBe(entry.outcome);
  await expect(store.append({ ...valid, action: 'dismiss', outcome: 'a\u0000b', deploymentId: 'd', seq: 1, repository: 'a/b' })).rejects.toThrow(/outcome: no NUL characters/);
});

test('clip never splits a surrogate pair and never exceeds its bound', () => {
  expect(clip('😀'.repeat(20), 20)).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 400 }), fc.integer({ min: 0, max: 300 }), (s, max) => {
      const c = clip(s, max);
      expect(c.length).toBeLessThanOrEqual(Math.max(max, 0));
      if (s.length <= max) expect(c).toBe(s);
      else expect(c).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
    }),
  );
});

const anyField = fc.oneof(
  fc.string({ maxLength: 400 }),
  fc.string({ unit: 'binary', maxLength: 12_000 }),
  fc.constantFrom(...AUDIT_ACTIONS, 'rm -rf /', ''),
  fc.anything(),
);
const rawEntry: fc.Arbitrary<RawAuditEntry> = fc.record(
  {
    at: fc.oneof(fc.constant(AT), anyField),
    actor: anyField,
    action: anyField,
    reverted: anyField,
    hosts: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 150 }), fc.anything()), { maxLength: 30 }), anyField),
    outcome: fc.oneof(anyField, fc.string({ minLength: 9_990, maxLength: 10_100 })),
  },
  { requiredKeys: ['at', 'actor', 'action', 'hosts', 'outcome'] },
);

test('property: any entry at all, once bounded, is taken by the real store and read back as written', async () => {
  await fc.assert(
    fc.asyncProperty(rawEntry, async (raw) => {
      const { entry, back } = await roundTrip(raw);
      expect(back).toBeDefined();
      const { deploymentId: _d, seq: _s, repository: _r, ...stored } = back as NonNullable<typeof back>;
      expect(stored).toEqual(entry);
    }),
    { numRuns: 300 },
  );
});

test('property: bounding is idempotent, and an entry within the limits is left as it is', () => {
  fc.assert(
    fc.property(rawEntry, (raw) => {
      const once = storableAuditEntry(raw);
      expect(storableAuditEntry(once)).toEqual(once);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(
      fc.record({
        at: fc.constant(AT),
        actor: fc.stringMatching(/^[a-z][a-z0-9 ._-]{0,198}[a-z0-9]$/),
        action: fc.constantFrom(...AUDIT_ACTIONS),
        reverted: fc.stringMatching(/^[0-9a-f]{40}$/),
        hosts: fc.array(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/), { maxLength: 20 }),
        outcome: fc.string({ unit: 'grapheme', maxLength: 3_000 }),
      }),
      (entry) => {
        expect(storableAuditEntry(entry)).toEqual(entry);
      },
    ),
    { numRuns: 300 },
  );
});
