import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDeployInput, ChangeInput, InputError, parseFleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { inputHosts } from '../../src/domain/host-refs';

const example = readFileSync(join(__dirname, '../../examples/fleet.yaml'), 'utf8');

function errorOf(text: string): string {
  try {
    parseFleetFile(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('expected the fleet file to be rejected');
}

test('the example fleet file parses and becomes a deploy input with defaults applied', () => {
  const fleet = parseFleetFile(example);
  const input = buildDeployInput(fleet, { pullRequest: 42 }, 'alice');
  expect(input.deploymentId).toBe('deploy-acme.nixos-fleet.pr42');
  expect(input.hosts.map((h) => `${h.name}:${h.user}@${h.address}:${h.port}/${h.attr}`)).toEqual([
    'gpc0:root@gpc0.home.example.net:22/gpc0',
    'hsb0:root@192.0.2.10:22/hsb0',
    'hsb1:root@hsb1.home.example.net:22/hsb1',
    'alice-laptop:alice@laptop.example.net:22/alice',
    'csb0:root@csb0.example.org:2222/csb0',
  ]);
  expect(input.manualWindowSeconds).toBe(24 * 3600);
  expect(input.onFailure).toEqual({ revert: 'pull-request', rollbackHosts: true });
  expect(input.rollout?.waves.map((w) => [w.name, w.hosts.length, w.maxParallel, w.bakeSeconds])).toEqual([
    ['canary', 1, 1, 600],
    ['home', 3, 2, 300],
    ['cloud', 1, 1, 0],
  ]);
  expect(input.rollout).toMatchObject({ buildFirst: true, failureBudget: 0, healthChecks: [{ kind: 'systemd' }], healthGraceSeconds: 60, confirmTimeoutSeconds: 30 });
});

test('a host in no wave, a wave naming an unknown host, or a host in two waves is refused naming the field', () => {
  expect(errorOf(example.replace('{ name: cloud, hosts: [csb0] }', '{ name: cloud, hosts: [csb9] }'))).toMatch(/rollout\.waves\[2\]\.hosts\[0\]: no host named "csb9"[\s\S]*hosts\[4\]\.name: "csb0" is in no rollout wave/);
  expect(errorOf(example.replace('{ name: cloud, hosts: [csb0] }', '{ name: cloud, hosts: [csb0, gpc0] }'))).toContain('rollout.waves[2].hosts[1]: "gpc0" is already in wave canary');
});

test.each([
  ['address: "gpc0; rm -rf /"', 'hosts[0].address'],
  ['address: "$(reboot)"', 'hosts[0].address'],
  ['address: "-oProxyCommand=x"', 'hosts[0].address'],
])('when a host address is %s, then the error names %s', (line, field) => {
  const text = example.replace('address: gpc0.home.example.net', line);
  expect(errorOf(text)).toContain(`${field}:`);
});

// Issue 12, bug 9: the old pattern took any run of hex digits, dots and colons, of any length.
test.each([
  ['a megabyte of hex digits', 'b'.repeat(1_000_000)],
  ['only dots', '...'],
  ['only colons', ':::'],
  ['hex and colons that are no IPv6 address', 'cafe:babe'],
  ['an IPv4 address with a part over 255', '999.1.1.1'],
  ['a dotted number that is no IPv4 address (a resolver reads 1.2.3 as 1.2.0.3)', '1.2.3'],
  ['a bare number (a resolver reads it as an IPv4 address)', '2130706433'],
  ['a hex number (a resolver reads it as an IPv4 address)', '0x7f000001'],
  ['a DNS label over 63 characters', `${'a'.repeat(64)}.example.net`],
  ['a DNS name over 253 characters', `${'abcdefghi.'.repeat(26)}net`],
  ['a label that starts with "-"', 'gpc0.-home.example.net'],
  ['a label that ends with "-"', 'gpc0-.home.example.net'],
  ['an empty label', 'gpc0..example.net'],
  ['an IPv6 address in brackets (give it bare)', '[2001:db8::1]'],
])('when a host address is %s, then it is refused naming hosts[0].address', (_what, address) => {
  const text = example.replace('address: gpc0.home.example.net', `address: "${address}"`);
  expect(errorOf(text)).toMatch(/^hosts\[0\]\.address: /m);
});

test.each(['gpc0', 'cafe', 'gpc0.home.example.net', 'xn--bcher-kva.example', '192.0.2.10', '127.0.0.2', '::1', '2001:db8::1', 'fe80::1%eth0', '::ffff:192.0.2.1', `${'a'.repeat(63)}.example.net`])(
  'when a host address is %s (an IP literal or a DNS host name), then it is accepted',
  (address) => {
    const fleet = parseFleetFile(example.replace('address: gpc0.home.example.net', `address: "${address}"`));
    expect(fleet.hosts[0]?.address).toBe(address);
  },
);

// Issue 12, bug 9: a union of the two change shapes answered `change: Invalid input`, naming no field.
test.each([
  [{ pullRequest: 1.5 }, /^change\.pullRequest: /],
  [{ pullRequest: -1 }, /^change\.pullRequest: /],
  [{ pullRequest: '42' }, /^change\.pullRequest: /],
  [{ pullRequest: 42, expectedHeadSha: 'abc' }, /^change\.expectedHeadSha: /],
  [{ commit: 'abc' }, /^change\.commit: /],
  [{ commit: 'a'.repeat(40), pullRequest: 0 }, /^change\.pullRequest: /],
  [{ pullRequest: 42, force: true }, /^change: .*force/],
  [{}, /^change\.pullRequest: /],
  ['42', /^change: /],
])('when the change is %j, then the error names the field', (change, message) => {
  expect(() => parseWith(ChangeInput, change, 'change')).toThrow(InputError);
  expect(() => parseWith(ChangeInput, change, 'change')).toThrow(message);
});

test('errors name each bad field, and every bad field is reported at once', () => {
  const text = example
    .replace('kind: home-manager', 'kind: darwin')
    .replace('port: 2222', 'port: 70000')
    .replace('user: alice', "user: 'alice`id`'")
    .replace('flakeRef: "github:{owner}/{repo}/{sha}"', 'flakeRef: "github:{owner}/{repo}"');
  const msg = errorOf(text);
  expect(msg).toContain('hosts[3].kind:');
  expect(msg).toContain('hosts[4].port:');
  expect(msg).toContain('hosts[3].user:');
  expect(msg).toContain('flakeRef: must pin the commit with {sha}');
});

test('duplicate host names and unknown fields are refused', () => {
  expect(errorOf(example.replace('name: hsb1', 'name: hsb0'))).toContain('hosts[2].name: duplicate host name "hsb0" (also hosts[1])');
  expect(errorOf(example.replace('kind: nixos\n  - name: hsb0', 'kind: nixos\n    colour: red\n  - name: hsb0'))).toMatch(/hosts\[0\].*colour/);
});

test('a switch template is a switch command with {flake}, never a shell line', () => {
  for (const bad of ['--flake {flake} {attr} --option', '--flake {flake}; reboot; --option', '--flake {flake} $(id) --option', "--flake '{flake}' --option"]) {
    expect(errorOf(example.replace('--flake {flake} --option', bad))).toContain('hosts[2].commands.switch: a switch command');
  }
  expect(errorOf(example.replace('nixos-rebuild switch --flake {flake}', 'rm -rf / --flake {flake}'))).toContain('hosts[2].commands.switch: a switch command');
  // What a user does write is accepted.
  const ok = parseFleetFile(example.replace('nixos-rebuild switch --flake {flake} --option connect-timeout 5', 'sudo nixos-rebuild switch --fast --flake {flake} --option connect-timeout 5'));
  expect(ok.hosts[2]?.commands?.switch).toBe('sudo nixos-rebuild switch --fast --flake {flake} --option connect-timeout 5');
});

test('a flake reference template must become a flake reference the hosts accept', () => {
  expect(errorOf(example.replace('flakeRef: "github:{owner}/{repo}/{sha}"', 'flakeRef: "{sha}"'))).toContain('flakeRef: a flake reference');
  expect(parseFleetFile(example.replace('flakeRef: "github:{owner}/{repo}/{sha}"', 'flakeRef: "git+https://git.example.com/{owner}/{repo}.git?rev={sha}"')).flakeRef).toContain('git+https');
});

test('text that is not YAML is refused with a clear message', () => {
  expect(errorOf('hosts: [unclosed')).toMatch(/not valid YAML/);
});

test('timeouts: per fleet, defaults that fit a 40-minute build, once in the input and on every host as the deployment takes them; bad values name the field', () => {
  const dflt = buildDeployInput(parseFleetFile(example), { pullRequest: 1 }, 'alice');
  // Hoisted: once in the input, not on every host (issue 13, bytes).
  expect(dflt.hostTimeouts).toEqual({ buildSeconds: 3600, activationSeconds: 600, healthSeconds: 300 });
  for (const h of dflt.hosts) expect(h.timeouts).toBeUndefined();
  for (const h of inputHosts(dflt)) expect(h.timeouts).toEqual({ buildSeconds: 3600, activationSeconds: 600, healthSeconds: 300 });
  const set = buildDeployInput(parseFleetFile(`${example}\ntimeouts: { build: 90m, activation: 5m, health: 45s }\n`), { pullRequest: 1 }, 'alice');
  for (const h of inputHosts(set)) expect(h.timeouts).toEqual({ buildSeconds: 5400, activationSeconds: 300, healthSeconds: 45 });
  // One given, the others default.
  const one = buildDeployInput(parseFleetFile(`${example}\ntimeouts: { build: 2h }\n`), { pullRequest: 1 }, 'alice');
  expect(inputHosts(one)[0]?.timeouts).toEqual({ buildSeconds: 7200, activationSeconds: 600, healthSeconds: 300 });
  expect(errorOf(`${example}\ntimeouts: { build: 0s }\n`)).toContain('timeouts.build: ');
  expect(errorOf(`${example}\ntimeouts: { activation: 3d }\n`)).toContain('timeouts.activation: ');
  expect(errorOf(`${example}\ntimeouts: { health: soon }\n`)).toContain('timeouts.health: ');
  expect(errorOf(`${example}\ntimeouts: { boot: 5m }\n`)).toMatch(/timeouts: .*boot/);
  // The manual window is bounded as the sweep of stale GC roots assumes (gcSweepAgeSeconds).
  expect(errorOf(example.replace(/manualWindow: \S+/, 'manualWindow: 45d'))).toContain('manualWindow: ');
});

// A duration given as a string is capped like a number (30 days): `99999999d` used to pass uncapped.
test.each([
  ['bake: 10m', 'bake: 99999999d', 'rollout.waves[0].bake'],
  ['bake: 10m', 'bake: 31d', 'rollout.waves[0].bake'],
  ['healthGrace: 60s', 'healthGrace: 2592001s', 'rollout.healthGrace'],
  ['confirmTimeout: 30s', 'confirmTimeout: 1000000000000s', 'rollout.confirmTimeout'],
  ['confirmTimeout: 30s', 'confirmTimeout: 2h', 'rollout.confirmTimeout'],
])('when %s becomes %s, then it is refused naming %s', (from, to, field) => {
  expect(errorOf(example.replace(from, to))).toMatch(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `, 'm'));
});

test('a string duration of exactly 30 days is accepted', () => {
  expect(() => parseFleetFile(example.replace('bake: 10m', 'bake: 30d'))).not.toThrow();
});
