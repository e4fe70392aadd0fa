import fc from 'fast-check';
import { pinFlakeRefTemplate } from '../../src/domain/flake-ref';
import { FleetFile, buildDeployInput } from '../../src/schemas/fleet.schema';

test('when a git+ reference pins rev= only, then ref=<branch> is added (Nix would fetch master)', () => {
  expect(pinFlakeRefTemplate('git+https://git.example.com/{owner}/{repo}.git?rev={sha}', 'main')).toBe('git+https://git.example.com/{owner}/{repo}.git?ref=main&rev={sha}');
  expect(pinFlakeRefTemplate('git+file:///srv/{repo}?rev={sha}&dir=hosts', 'release/1')).toBe('git+file:///srv/{repo}?ref=release/1&rev={sha}&dir=hosts');
});

test('when the template names its ref or is not a git+ reference, then it is left as written', () => {
  expect(pinFlakeRefTemplate('git+https://h/{repo}.git?ref=prod&rev={sha}', 'main')).toBe('git+https://h/{repo}.git?ref=prod&rev={sha}');
  expect(pinFlakeRefTemplate('github:{owner}/{repo}/{sha}', 'main')).toBe('github:{owner}/{repo}/{sha}');
  expect(pinFlakeRefTemplate('path:/srv/fleet', 'main')).toBe('path:/srv/fleet');
});

test('when the template says {branch}, then it is filled in', () => {
  expect(pinFlakeRefTemplate('git+https://h/{repo}.git?ref={branch}&rev={sha}', 'staging')).toBe('git+https://h/{repo}.git?ref=staging&rev={sha}');
});

test('property: every git+ reference with rev= ends up with exactly one ref=, and pinning twice changes nothing', () => {
  const branch = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,12}(?:\/[A-Za-z0-9_][A-Za-z0-9._-]{0,8})?$/);
  const extra = fc.array(fc.constantFrom('dir=hosts', 'shallow=1', 'ref={branch}', 'submodules=1'), { maxLength: 2 });
  fc.assert(
    fc.property(branch, extra, fc.boolean(), (b, params, revFirst) => {
      const query = revFirst ? ['rev={sha}', ...params] : [...params, 'rev={sha}'];
      const t = `git+https://git.example.com/{owner}/{repo}.git?${query.join('&')}`;
      const once = pinFlakeRefTemplate(t, b);
      expect(once.match(/[?&]ref=/g)?.length ?? 0).toBeGreaterThanOrEqual(1);
      if (!params.includes('ref={branch}')) expect(once.match(/[?&]ref=/g)).toHaveLength(1);
      expect(once).not.toContain('{branch}');
      expect(pinFlakeRefTemplate(once, b)).toBe(once);
    }),
  );
});

test('when a fleet file on branch main uses README\'s git+https example, then the deployment gets ref=main', () => {
  const fleet = FleetFile.parse({
    repository: { owner: 'acme', name: 'fleet' },
    flakeRef: 'git+https://git.example.com/{owner}/{repo}.git?rev={sha}',
    hosts: [{ name: 'web1', address: 'web1.example.com', kind: 'nixos' }],
  });
  expect(buildDeployInput(fleet, { pullRequest: 1 }, 'alice').flakeRefTemplate).toBe('git+https://git.example.com/{owner}/{repo}.git?ref=main&rev={sha}');
});
