/**
 * Pages and summary of a deployment's hosts (src/domain/host-pages.ts): the pages, read in order,
 * are exactly the matching hosts in deployment order; no page exceeds its size; the summary's counts
 * add up, and its size does not grow with the hosts.
 */
import fc from 'fast-check';
import type { DeploymentStatus, HostStatus } from '../../src/domain/deployment';
import { GROUP_NAMES, HOST_STATES, hostGroups, pageHosts, summarize, type HostGroup } from '../../src/domain/host-pages';

const arbStatus = fc
  .tuple(fc.array(fc.constantFrom(...HOST_STATES), { maxLength: 300 }), fc.integer({ min: 1, max: 5 }))
  .map(([states, nWaves]): DeploymentStatus => {
    const hosts: HostStatus[] = states.map((state, i) => ({ name: `h${i}`, kind: 'nixos', state, wave: `w${i % nWaves}` }));
    return {
      deploymentId: 'deploy-acme.fleet.pr1',
      phase: 'deploying',
      repository: { owner: 'acme', name: 'fleet', branch: 'main' },
      change: { kind: 'pull-request', number: 1 },
      hosts,
      waves: Array.from({ length: nWaves }, (_, w) => ({ name: `w${w}`, hosts: hosts.filter((h) => h.wave === `w${w}`).map((h) => h.name), state: 'running' as const })),
      audit: [{ at: 't', actor: 'nixfleet (automatic)', action: 'auto-compensate', hosts: hosts.map((h) => h.name), outcome: `rolled back: ${hosts.map((h) => h.name).join(', ')}` }],
    } as unknown as DeploymentStatus;
  });

test('the pages, read in order, are the matching hosts in deployment order, each at most pageSize', () => {
  fc.assert(
    fc.property(arbStatus, fc.integer({ min: 1, max: 50 }), fc.option(fc.constantFrom(...HOST_STATES), { nil: undefined }), fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }), (s, pageSize, state, wave) => {
      const q = { pageSize, ...(state ? { state } : {}), ...(wave !== undefined ? { wave: `w${wave}` } : {}) };
      const expected = s.hosts.filter((h) => (state === undefined || h.state === state) && (wave === undefined || h.wave === `w${wave}`));
      const first = pageHosts(s, { page: 1, ...q });
      expect(first.total).toBe(expected.length);
      expect(first.pages).toBe(Math.ceil(expected.length / pageSize));
      const all: HostStatus[] = [];
      for (let p = 1; p <= first.pages + 1; p++) {
        const page = pageHosts(s, { page: p, ...q });
        expect(page.hosts.length).toBeLessThanOrEqual(pageSize);
        if (p <= first.pages) expect(page.hosts.length).toBeGreaterThan(0);
        else expect(page.hosts).toEqual([]);
        all.push(...page.hosts);
      }
      expect(all).toEqual(expected);
    }),
  );
});

test('the summary counts every host once, per state and per wave, and holds no host list', () => {
  fc.assert(
    fc.property(arbStatus, (s) => {
      const sum = summarize(s);
      expect(sum.hosts.total).toBe(s.hosts.length);
      expect(Object.values(sum.hosts.byState).reduce((a, b) => a + (b ?? 0), 0)).toBe(s.hosts.length);
      for (const st of HOST_STATES) expect(sum.hosts.byState[st] ?? 0).toBe(s.hosts.filter((h) => h.state === st).length);
      expect(sum.waves?.reduce((a, w) => a + w.total, 0)).toBe(s.hosts.length);
      for (const w of sum.waves ?? []) expect(Object.values(w.byState).reduce((a, b) => a + (b ?? 0), 0)).toBe(w.total);
      // Bounded: its size depends on the waves and the states, not on the hosts (the latest audit entry names at most 10).
      expect(sum.audit.latest?.hostCount).toBe(s.hosts.length);
      expect(sum.audit.latest?.hosts?.length).toBe(Math.min(10, s.hosts.length));
      // (the failed panel's groups name at most GROUP_NAMES hosts each, a host in at most two of them)
      expect(JSON.stringify(sum).length).toBeLessThan(6000);
    }),
  );
});

test("the summary's groups (the failed panel's lists) count their hosts and name the first GROUP_NAMES in deployment order", () => {
  fc.assert(
    fc.property(arbStatus, fc.option(fc.nat(), { nil: undefined }), (s0, failedAt) => {
      const failedHost = failedAt !== undefined && s0.hosts.length > 0 ? s0.hosts[failedAt % s0.hosts.length]?.name : undefined;
      // Some hosts carry the generation they were switched to (the deployed group needs it).
      const s = { ...s0, ...(failedHost ? { failedHost } : {}), hosts: s0.hosts.map((h, i) => (i % 3 === 0 ? h : { ...h, after: { number: 43, storePath: '/nix/store/x' }, error: 'e'.repeat(300) })) } as DeploymentStatus;
      const sum = summarize(s);
      const groups: HostGroup[] = ['failed', 'deployed', 'notAttempted', 'rolledBack', 'rollbackFailed'];
      for (const g of groups) {
        const members = s.hosts.filter((h) => hostGroups(h, s.failedHost).includes(g));
        expect(sum.groups?.[g].count).toBe(members.length);
        expect(sum.groups?.[g].first.map((h) => h.name)).toEqual(members.slice(0, GROUP_NAMES).map((h) => h.name));
        for (const h of sum.groups?.[g].first ?? []) expect((h.error ?? '').length).toBeLessThanOrEqual(200);
      }
      // The card's rules: a failed host is never counted deployed; a deployed host has its new generation.
      expect(s.hosts.filter((h) => hostGroups(h, s.failedHost).includes('failed') && hostGroups(h, s.failedHost).includes('deployed'))).toEqual([]);
      if (failedHost) expect(hostGroups(s.hosts.find((h) => h.name === failedHost) as HostStatus, failedHost)).toContain('failed');
    }),
  );
});
