/**
 * Property-based tests over fleet files (fast-check, thousands of cases): any text or JSON value is
 * either a fleet file or an InputError whose every line names a field; a hostile value in any field
 * that reaches a shell, a URL or a git ref is refused naming that field; and whatever the schema
 * accepts also passes the host-side validators the activities apply before anything reaches a host.
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { buildDeployInput, FleetFile, HostEntry, InputError, parseFleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { validateFlakeAttr, validateFlakeRef, validateUser } from '../../src/hosts/shell';
import { recorder } from '../faults/figures';

const rec = recorder(__filename);
afterAll(() => rec.save());

const alnum = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789');
const word = (min: number, max: number) => fc.string({ unit: alnum, minLength: min, maxLength: max });

/** Valid fleet files, built from the documented patterns. */
const validFleet = fc
  .record({
    owner: word(1, 20),
    repo: word(1, 30),
    branch: fc.constantFrom('main', 'release/24.11', 'nixos-unstable'),
    flakeRef: fc.constantFrom('github:{owner}/{repo}/{sha}', 'git+https://git.example.com/{owner}/{repo}.git?rev={sha}', 'git+ssh://git@example.com/{owner}/{repo}?rev={sha}'),
    revert: fc.constantFrom('off', 'commit', 'pull-request'),
    rollbackHosts: fc.boolean(),
    manualWindow: fc.oneof(fc.integer({ min: 0, max: 30 * 24 * 3600 }), fc.constantFrom('90s', '30m', '24h', '7d')),
    hosts: fc.uniqueArray(
      fc.record({
        name: word(1, 12),
        address: fc.oneof(word(1, 12).map((w) => `${w}.example.net`), fc.constantFrom('192.0.2.10', '2001:db8::1', '127.0.0.1', '::1')),
        kind: fc.constantFrom('nixos', 'home-manager'),
        user: fc.option(fc.constantFrom('root', 'alice', 'deploy_1'), { nil: undefined }),
        port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        attr: fc.option(word(1, 12), { nil: undefined }),
      }),
      { minLength: 1, maxLength: 6, selector: (h) => h.name },
    ),
  })
  .map((v) => ({
    repository: { owner: v.owner, name: v.repo, branch: v.branch },
    flakeRef: v.flakeRef,
    onFailure: { revert: v.revert, rollbackHosts: v.rollbackHosts },
    manualWindow: v.manualWindow,
    hosts: v.hosts.map((h) => Object.fromEntries(Object.entries(h).filter(([, x]) => x !== undefined))),
  }));

/** Characters that mean something to a shell, a URL or git. */
const META = [';', '|', '&&', '$(', '`', "'", '"', '\n', ' ', '<', '>', '(', ')', '\\', '!', '*', '$'];
const hostile = fc
  .tuple(fc.string({ maxLength: 8 }), fc.constantFrom(...META), fc.constantFrom('touch /tmp/pwned', 'reboot', 'x'), fc.string({ maxLength: 8 }))
  .map(([a, m, c, b]) => `${a}${m}${c}${b}`);

/** Fields that reach a shell, a URL or a git ref, as [path in the error, setter]. */
type Fleet = ReturnType<typeof FleetFile.parse> & Record<string, unknown>;
const FIELDS: Array<[string, (f: Fleet, v: string) => void]> = [
  ['repository.owner', (f, v) => void (f.repository.owner = v)],
  ['repository.name', (f, v) => void (f.repository.name = v)],
  ['repository.branch', (f, v) => void (f.repository.branch = v)],
  ['flakeRef', (f, v) => void (f.flakeRef = v)],
  ['hosts[0].name', (f, v) => void ((f.hosts[0] as { name: string }).name = v)],
  ['hosts[0].address', (f, v) => void ((f.hosts[0] as { address: string }).address = v)],
  ['hosts[0].user', (f, v) => void ((f.hosts[0] as { user?: string }).user = v)],
  ['hosts[0].attr', (f, v) => void ((f.hosts[0] as { attr?: string }).attr = v)],
  ['defaults.user', (f, v) => void (f.defaults = { user: v })],
];

function lines(err: unknown): string[] {
  expect(err).toBeInstanceOf(InputError);
  return (err as Error).message.split('\n');
}

test('any YAML/JSON text is a fleet file or an InputError whose every line names a field (3000 texts)', () => {
  let n = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
        fc.jsonValue({ maxDepth: 4 }).map((v) => stringify(v)),
        validFleet.map((f) => stringify(f)),
      ),
      (text) => {
        n += 1;
        try {
          parseFleetFile(text);
        } catch (err) {
          // A YAML syntax error is one message (with the parser's excerpt); a schema error is one line per field.
          if ((err as Error).message.startsWith('fleet file: not valid YAML/JSON: ')) return;
          for (const l of lines(err)) expect(l).toMatch(/^(\(input\)|[A-Za-z]+(?:\[\d+\])?(?:\.[A-Za-z]+(?:\[\d+\])?)*): /);
        }
      },
    ),
    { numRuns: 3000 },
  );
  rec.inputs(n);
  rec.check('every parse error names a field', true);
});

test('valid fleet files parse, and every value that reaches a host passes the host-side validators (1000 fleets)', () => {
  fc.assert(
    fc.property(validFleet, fc.integer({ min: 1, max: 10_000 }), (raw, pr) => {
      const fleet = parseWith(FleetFile, raw);
      const input = buildDeployInput(fleet, { pullRequest: pr }, 'alice');
      for (const h of input.hosts) {
        validateFlakeAttr(h.attr);
        validateUser(h.user);
      }
      expect(input.deploymentId).toMatch(/^[A-Za-z0-9._-]{1,200}$/);
    }),
    { numRuns: 1000 },
  );
  rec.inputs(1000);
  rec.check('accepted fleets pass the host validators', true);
});

test.each(FIELDS)('a hostile value in %s is refused, and the error names that field (300 values)', (field, set) => {
  fc.assert(
    fc.property(validFleet, hostile, (raw, value) => {
      const f = structuredClone(raw) as unknown as Fleet;
      set(f, value);
      let err: unknown;
      try {
        parseWith(FleetFile, f);
      } catch (e) {
        err = e;
      }
      expect(err).toBeDefined();
      expect(lines(err).some((l) => l.startsWith(`${field}: `))).toBe(true);
    }),
    { numRuns: 300 },
  );
  rec.inputs(300);
  rec.check(`hostile ${field} refused naming the field`, true);
});

// Found by this suite: `commands.switch` used to accept any single line containing {flake}, so a fleet
// file or an operator's API body could run any command as root on every host. It is now held to the
// shape of a switch command with plain words only.
test('a hostile commands.switch template is refused naming hosts[0].commands.switch', () => {
  fc.assert(
    fc.property(validFleet, hostile, (raw, value) => {
      const f = structuredClone(raw) as unknown as Fleet;
      (f.hosts[0] as { commands?: unknown }).commands = { switch: `nixos-rebuild switch --flake {flake}${value}` };
      expect(() => parseWith(FleetFile, f)).toThrow(/hosts\[0\]\.commands\.switch: /);
    }),
    { numRuns: 100 },
  );
});

// Found by this suite: the flakeRef template was checked for characters and {sha} only, so "{sha}"
// passed and every switch then failed at deploy time. It is now checked with the host-side validator.
test('every accepted flakeRef template becomes a flake reference the hosts accept', () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'abc:/.?=&{}'.split('')), maxLength: 12 }), (middle) => {
      const template = `${middle}{sha}`;
      const ok = FleetFile.safeParse({ repository: { owner: 'acme', name: 'fleet' }, flakeRef: template, hosts: [{ name: 'h', address: 'h', kind: 'nixos' }] }).success;
      if (!ok) return;
      validateFlakeRef(template.replace(/\{owner\}/g, 'acme').replace(/\{repo\}/g, 'fleet').replace(/\{sha\}/g, '0'.repeat(40)));
    }),
    { numRuns: 300 },
  );
});

// Issue 12, bug 9: the old address pattern took any run of hex digits, dots and colons, of any length.
test('a host address over hex digits, dots and colons is accepted exactly when it is an IP literal or a bounded DNS name (3000 strings)', () => {
  const accepts = (address: string) => HostEntry.safeParse({ name: 'h', address, kind: 'nixos' }).success;
  const hexDotColon = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF.:'), maxLength: 45 });
  const digitsAndDots = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'0123456789.'), maxLength: 20 }),
    fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((p) => p.join('.')),
  );
  let n = 0;
  fc.assert(
    fc.property(fc.oneof(hexDotColon, digitsAndDots, fc.string({ unit: fc.constantFrom('b', '.', ':'), minLength: 200, maxLength: 2_000 })), (address) => {
      n += 1;
      const ok = accepts(address);
      // With a colon it can only be IPv6; only digits and dots, only IPv4: node's parser is the oracle.
      if (address.includes(':')) expect(ok).toBe(isIP(address) === 6);
      else if (/^[0-9.]*$/.test(address)) expect(ok).toBe(isIP(address) === 4);
      else if (ok) {
        // A DNS name: bounded, no empty or over-long label, and not a number a resolver reads as IPv4.
        expect(address.length).toBeLessThanOrEqual(253);
        for (const label of address.split('.')) expect(label.length >= 1 && label.length <= 63).toBe(true);
        expect(address.split('.').at(-1)).not.toMatch(/^[0-9]+$/);
      }
    }),
    { numRuns: 3000 },
  );
  rec.inputs(n);
  expect(accepts('b'.repeat(1_000_000))).toBe(false);
});
