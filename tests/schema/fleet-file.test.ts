import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDeployInput, InputError, parseFleetFile } from '../../src/schemas/fleet.schema';

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
  expect(input.deploymentId).toBe('deploy-acme-nixos-fleet-pr42');
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
