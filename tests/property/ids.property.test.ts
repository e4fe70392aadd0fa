/**
 * Deployment and fleet-lock ids (issue 12, bug 8): two different fleets or changes never share an id.
 * `deploy-${owner}-${repo}-…` made `a-b/c` equal `a/b-c`, and the lock's branch escaping made
 * `release/1` equal `release_1`. Fast-check over every owner, repository and branch the fleet schema
 * accepts: distinct inputs give distinct ids, each id stays within Temporal's id length (1000) and the
 * API's and the audit store's deployment-id bounds (400, letters, digits, ".", "_", "-").
 */
import fc from 'fast-check';
import { confirmUnit } from '../../src/domain/activities';
import { AUDIT_LIMITS } from '../../src/domain/audit';
import { deploymentWorkflowId, type ChangeRef, type RepoRef } from '../../src/domain/deployment';
import { FleetFile } from '../../src/schemas/fleet.schema';
import { fleetLockId } from '../../workflows/fleet-lock';

const repo = (owner: string, name: string, branch = 'main'): RepoRef => ({ owner, name, branch });
const pr = (number: number): ChangeRef => ({ kind: 'pull-request', number });

test('the collisions the issue names are gone', () => {
  expect(deploymentWorkflowId(repo('a-b', 'c'), pr(1))).not.toBe(deploymentWorkflowId(repo('a', 'b-c'), pr(1)));
  expect(fleetLockId(repo('a-b', 'c'))).not.toBe(fleetLockId(repo('a', 'b-c')));
  expect(fleetLockId(repo('acme', 'fleet', 'release/1'))).not.toBe(fleetLockId(repo('acme', 'fleet', 'release_1')));
  expect(fleetLockId(repo('acme', 'a.b', 'c'))).not.toBe(fleetLockId(repo('acme', 'a', 'b.c')));
  // A repository whose name ends like a change: not the same as another repository's deployment.
  expect(deploymentWorkflowId(repo('acme', 'x-pr1'), pr(2))).not.toBe(deploymentWorkflowId(repo('acme', 'x'), pr(12)));
});

test('ids stay readable: the usual owner, repository and branch appear as written', () => {
  expect(deploymentWorkflowId(repo('acme', 'nixos-fleet'), pr(42))).toBe('deploy-acme.nixos-fleet.pr42');
  expect(deploymentWorkflowId(repo('acme', 'nixos-fleet'), { kind: 'commit', sha: '0123456789abcdef0123456789abcdef01234567' })).toBe('deploy-acme.nixos-fleet.0123456789ab');
  expect(fleetLockId(repo('acme', 'nixos-fleet', 'main'))).toBe('fleet-lock-acme.nixos-fleet.main');
  expect(fleetLockId(repo('acme', 'nixos-fleet', 'release/24.11'))).toBe('fleet-lock-acme.nixos-fleet.release_2f24_2e11');
});

test('the longest names the fleet schema accepts, escaped as much as they can be, still fit', () => {
  const worst = repo('a'.repeat(39), `a${'.'.repeat(99)}`, `a${'_'.repeat(199)}`);
  expect(FleetFile.safeParse({ repository: worst, hosts: [{ name: 'h', address: 'h', kind: 'nixos' }] }).success).toBe(true);
  expect(deploymentWorkflowId(worst, pr(2_147_483_647)).length).toBeLessThanOrEqual(AUDIT_LIMITS.deploymentId);
  expect(fleetLockId(worst).length).toBeLessThanOrEqual(1000);
  // The self-rollback timer of two long ids of one repository: two units.
  expect(confirmUnit(deploymentWorkflowId(worst, pr(1)))).not.toBe(confirmUnit(deploymentWorkflowId(worst, pr(2))));
  expect(confirmUnit(deploymentWorkflowId(worst, pr(1))).length).toBeLessThanOrEqual(200);
});

// Owners, repositories and branches as the fleet schema accepts them, biased toward the characters
// that used to collide.
const char = (alphabet: string) => fc.constantFrom(...alphabet.split(''));
// Short strings over a few characters make two draws meet often (the old scheme fails within a few
// hundred runs); long ones over the whole alphabet check the bounds.
const short = (alphabet: string) => fc.string({ unit: char(alphabet), minLength: 0, maxLength: 3 }).map((t) => `a${t}`);
const owner = fc.oneof({ arbitrary: short('a-'), weight: 3 }, { arbitrary: fc.string({ unit: char('abcdefghijklmnopqrstuvwxyz0123456789-'), minLength: 1, maxLength: 39 }), weight: 1 });
const name = fc.oneof({ arbitrary: short('a-._'), weight: 3 }, { arbitrary: fc.string({ unit: char('abcdefghijklmnopqrstuvwxyzABC0123456789._-'), minLength: 1, maxLength: 100 }), weight: 1 });
const branch = fc.oneof({ arbitrary: short('a-._/1'), weight: 3 }, { arbitrary: fc.string({ unit: char('abcdefghijklmnopqrstuvwxyz0123456789._/-'), minLength: 1, maxLength: 200 }), weight: 1 });

const isValid = (r: RepoRef) => FleetFile.safeParse({ repository: r, hosts: [{ name: 'h', address: 'h', kind: 'nixos' }] }).success;
const validRepo = fc.record({ owner, name, branch }).filter((r) => isValid(r));
/**
 * Near misses: one run of words and separators cut into owner, repository and branch at two different
 * places (`a-b`/`c` and `a`/`b-c`), or one separator swapped for another (`release/1`, `release_1`).
 */
const nearMiss: fc.Arbitrary<[RepoRef, RepoRef]> = fc
  .tuple(
    fc.array(fc.stringMatching(/^[a-z0-9]{1,3}$/), { minLength: 3, maxLength: 6 }),
    fc.array(fc.constantFrom('-', '.', '_', '/'), { minLength: 6, maxLength: 6 }),
    fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()),
    fc.nat(),
    fc.constantFrom('-', '.', '_', '/'),
  )
  .map(([words, seps, [c1, c2, c3, c4], swapAt, swapTo]): [RepoRef, RepoRef] => {
    const n = words.length;
    const cut = (i: number, j: number, sep: string[]): RepoRef => {
      const a = 1 + (i % (n - 2));
      const b = a + 1 + (j % (n - a - 1));
      const join = (from: number, to: number) => words.slice(from, to).map((w, k) => (k === 0 ? w : `${sep[from + k - 1]}${w}`)).join('');
      return { owner: join(0, a), name: join(a, b), branch: join(b, n) };
    };
    if (c3 % 2 === 0) return [cut(c1, c2, seps), cut(c3, c4, seps)];
    // The same cut with one separator changed.
    const swapped = seps.map((x, k) => (k === swapAt % seps.length ? swapTo : x));
    return [cut(c1, c2, seps), cut(c1, c2, swapped)];
  })
  .filter(([a, b]) => isValid(a) && isValid(b));
const repoPair = fc.oneof(fc.tuple(validRepo, validRepo), nearMiss);
const change: fc.Arbitrary<ChangeRef> = fc.oneof(
  fc.integer({ min: 1, max: 12 }).map((n) => pr(n)),
  fc.integer({ min: 1, max: 2_147_483_647 }).map((n) => pr(n)),
  fc.stringMatching(/^[0-9a-f]{40}$/).map((sha): ChangeRef => ({ kind: 'commit', sha })),
);

test('property: different fleets (owner, repository, branch) never share a lock id, and every lock id fits Temporal (4000 pairs)', () => {
  fc.assert(
    fc.property(repoPair, ([a, b]) => {
      const [ia, ib] = [fleetLockId(a), fleetLockId(b)];
      expect(ia.length).toBeLessThanOrEqual(1000);
      expect(ia).toMatch(/^[A-Za-z0-9._-]+$/);
      if (a.owner !== b.owner || a.name !== b.name || a.branch !== b.branch) expect(ia).not.toBe(ib);
      else expect(ia).toBe(ib);
    }),
    { numRuns: 4000 },
  );
});

test('property: different repositories or changes never share a deployment id, and every id fits the API and the audit store (4000 pairs)', () => {
  fc.assert(
    fc.property(repoPair, change, change, fc.boolean(), ([a, b], ca, other, sameChange) => {
      const cb = sameChange ? ca : other;
      const [ia, ib] = [deploymentWorkflowId(a, ca), deploymentWorkflowId(b, cb)];
      expect(ia.length).toBeLessThanOrEqual(AUDIT_LIMITS.deploymentId);
      expect(ia).toMatch(/^[A-Za-z0-9._-]+$/);
      // The branch is not part of a deployment's id (the lock's is): same repository, same change, same id.
      const tail = (c: ChangeRef) => (c.kind === 'pull-request' ? `pr${c.number}` : c.sha.slice(0, 12));
      if (a.owner !== b.owner || a.name !== b.name || tail(ca) !== tail(cb)) expect(ia).not.toBe(ib);
      else expect(ia).toBe(ib);
    }),
    { numRuns: 4000 },
  );
});
