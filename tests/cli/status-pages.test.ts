/**
 * `nixfleet status` at fleet scale, as text (pure: the API's summary and page of a 10,000-host status,
 * formatted by the CLI). The output's length follows the page and the number of waves, not the fleet.
 * The CLI against the real API is in exit-codes.test.ts.
 */
import { formatHostPage, formatSummary } from '../../src/cli/main';
import type { DeploymentStatus, HostStatus } from '../../src/domain/deployment';
import { pageHosts, summarize } from '../../src/domain/host-pages';

const N = 10_000;
const WAVE = 500;

function bigStatus(): DeploymentStatus {
  const hosts: HostStatus[] = Array.from({ length: N }, (_, i) => {
    const name = `h${i + 1}`;
    if (i < 119) return { name, kind: 'nixos', state: 'switched', before: { number: 42, storePath: '/nix/store/a' }, after: { number: 43, storePath: '/nix/store/b' } };
    if (i === 119) return { name, kind: 'nixos', state: 'failed', before: { number: 42, storePath: '/nix/store/a' }, error: 'activation failed (exit 4)' };
    return { name, kind: 'nixos', state: 'not-attempted' };
  });
  const waves = Array.from({ length: N / WAVE }, (_, i) => ({ name: `w${i + 1}`, hosts: hosts.slice(i * WAVE, (i + 1) * WAVE).map((h) => h.name), state: i === 0 ? ('halted' as const) : ('not-started' as const) }));
  return {
    deploymentId: 'deploy-acme.fleet.pr7',
    phase: 'awaiting-operator',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 7 },
    hosts,
    waves,
    failedHost: 'h120',
    failure: 'switch failed on h120',
    audit: [],
    outcome: 'failed-not-rolled-back',
  } as DeploymentStatus;
}

test('when a 10,000-host deployment is shown a page at a time, then the text has the counts, one line a wave, the page and how to get the next', () => {
  const s = bigStatus();
  const summary = formatSummary(summarize(s));
  expect(summary.split('\n')).toEqual([
    'deployment deploy-acme.fleet.pr7  acme/fleet@main  phase: awaiting-operator  outcome: failed-not-rolled-back',
    '⚠ switch failed on h120',
    'hosts: 10000: 119 switched · 1 failed · 9880 not-attempted',
    '  wave w1    halted      500: 119 switched · 1 failed · 380 not-attempted',
    ...Array.from({ length: 19 }, (_, i) => `  wave ${`w${i + 2}`.padEnd(4)}  not-started 500: 500 not-attempted`),
  ]);
  const page = formatHostPage(pageHosts(s, { page: 2, pageSize: 100 })).split('\n');
  expect(page).toHaveLength(1 + 100 + 1);
  expect(page[0]).toMatch(/^HOST\s+KIND\s+STATE\s+GENERATION\s+NOTE$/);
  expect(page[1]).toMatch(/^h101\s+nixos\s+switched\s+42 → 43$/);
  expect(page[20]).toMatch(/^h120\s+nixos\s+failed\s+42\s+activation failed \(exit 4\)$/);
  expect(page[101]).toBe('hosts 101–200 of 10000 · page 2 of 100 (--page 3 for the next, --all for every host)');
  const wave = formatHostPage(pageHosts(s, { page: 5, pageSize: 100, wave: 'w3' }), { wave: 'w3' }).split('\n');
  expect(wave[1]).toMatch(/^h1401\s/);
  expect(wave[wave.length - 1]).toBe('hosts 401–500 of 500 in wave w3 · page 5 of 5');
  expect(formatHostPage(pageHosts(s, { page: 6, pageSize: 100, wave: 'w3' }), { wave: 'w3' })).toBe('page 6 is past the last (5) of 500 hosts in wave w3');
  expect(formatHostPage(pageHosts(s, { page: 1, pageSize: 100, state: 'rolled-back' }), { state: 'rolled-back' })).toBe('no hosts in state rolled-back');
});
