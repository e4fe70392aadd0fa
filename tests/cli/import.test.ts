/**
 * `nixfleet import --from deploy-rs|colmena FLAKE` on small real flakes, evaluated by the real `nix`
 * (offline: the flakes have no inputs and carry plain attribute sets, as deploy-rs's `deploy.nodes`
 * and a colmena hive are). Every profile `path`, NixOS configuration and `meta.nixpkgs` here is a
 * `throw`: the import must read the connection settings without forcing them. The written file is
 * read back with the fleet file parser the deployer uses.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT, run } from '../../src/cli/main';
import { parseFleetFile } from '../../src/schemas/fleet.schema';

let base = '';
let env: NodeJS.ProcessEnv = {};

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'nixfleet-import-'));
  mkdirSync(join(base, 'nix'));
  // As testkit/fleet's hosts: no binary cache to wait on, flakes on, no nixbld group needed.
  writeFileSync(join(base, 'nix', 'nix.conf'), 'substituters =\nbuild-users-group =\nexperimental-features = nix-command flakes\n');
  env = { ...process.env, NIX_CONF_DIR: join(base, 'nix') };
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

let seq = 0;
function flake(outputs: string): string {
  const dir = join(base, `flake-${++seq}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'flake.nix'), `{\n  outputs = { self }: ${outputs};\n}\n`);
  return dir;
}

async function nixfleet(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  let code: number;
  try {
    code = await run(args, { out: (s) => out.push(s), err: (s) => err.push(s), confirm: () => Promise.resolve(false), env });
  } catch (e) {
    err.push((e as Error).message);
    code = (e as Error).name === 'InputError' ? EXIT.usage : EXIT.error;
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('when a flake carries deploy-rs deploy.nodes, then import writes a fleet file with a host per profile, ports from sshOpts, Home Manager profiles as their user', async () => {
  const dir = flake(`{
    deploy = {
      sshUser = "root";
      nodes.web1 = { hostname = "web1.example.net"; sshOpts = [ "-p" "2222" ]; profiles.system = { user = "root"; path = throw "profile paths are not evaluated"; }; };
      nodes.lap = {
        hostname = "10.1.2.3";
        profilesOrder = [ "system" "alice" ];
        profiles.alice = { user = "alice"; sshUser = "alice"; sshOpts = [ "-oPort=2022" ]; path = throw "no"; };
        profiles.system = { path = throw "no"; };
      };
    };
    nixosConfigurations = { web1 = throw "not evaluated"; lap = throw "not evaluated"; };
    homeConfigurations."alice@lap" = throw "not evaluated";
  }`);
  const out = join(base, 'deploy-rs.yaml');
  const r = await nixfleet(['import', '--from', 'deploy-rs', dir, '--repository', 'acme/nixos-fleet', '--branch', 'release', '--out', out]);
  expect(r).toMatchObject({ code: EXIT.ok });
  expect(r.err).toBe(`${out}: 3 hosts: lap, lap-alice, web1`);
  const fleet = parseFleetFile(readFileSync(out, 'utf8'), out);
  expect(fleet.repository).toEqual({ owner: 'acme', name: 'nixos-fleet', branch: 'release' });
  expect(fleet.hosts).toEqual([
    { name: 'lap', address: '10.1.2.3', kind: 'nixos' },
    { name: 'lap-alice', address: '10.1.2.3', port: 2022, user: 'alice', kind: 'home-manager', attr: 'alice@lap' },
    { name: 'web1', address: 'web1.example.net', port: 2222, kind: 'nixos' },
  ]);

  // An existing file is not replaced without --overwrite.
  const again = await nixfleet(['import', '--from', 'deploy-rs', dir, '--repository', 'acme/nixos-fleet', '--out', out]);
  expect(again.code).toBe(EXIT.usage);
  expect(again.err).toMatch(/exists \(--overwrite/);
});

test('when a flake carries a raw colmena hive of module functions, then import reads deployment.* without nixpkgs', async () => {
  const dir = flake(`{
    colmena = {
      meta = { nixpkgs = throw "nixpkgs is not available here"; specialArgs.domain = "example.org"; };
      defaults = { pkgs, ... }: { deployment.targetPort = 2200; environment.systemPackages = [ pkgs.vim ]; };
      db = { name, domain, pkgs, ... }: { deployment.targetHost = "\${name}.\${domain}"; services.x = pkgs.hello; };
      cache = { deployment = { targetHost = "192.0.2.7"; targetPort = 22; targetUser = "root"; tags = [ "edge" ]; }; };
      gw = { config, ... }: { networking.hostName = config.x; };
    };
    nixosConfigurations = { db = throw "no"; cache = throw "no"; gw = throw "no"; };
  }`);
  const r = await nixfleet(['import', '--from', 'colmena', dir, '--repository', 'acme/hive']);
  expect(r.code).toBe(EXIT.ok);
  const fleet = parseFleetFile(r.out, 'stdout');
  expect(fleet.hosts).toEqual([
    { name: 'cache', address: '192.0.2.7', port: 22, kind: 'nixos' },
    { name: 'db', address: 'db.example.org', port: 2200, kind: 'nixos' },
    // targetHost defaults to the node's name, as in colmena.
    { name: 'gw', address: 'gw', port: 2200, kind: 'nixos' },
  ]);
  expect(r.out).toMatch(/^# Imported by `nixfleet import --from colmena` from the colmena hive \(colmena\)/);
});

test('when a flake carries a colmenaHive (makeHive), then import takes its evaluated deploymentConfig', async () => {
  const dir = flake(`{
    colmenaHive = {
      __schema = "v0";
      nodes = throw "not evaluated";
      deploymentConfig = {
        a = { targetHost = "a.example.net"; targetPort = null; targetUser = "root"; tags = []; };
        b = { targetHost = "2001:db8::5"; targetPort = 2201; targetUser = "root"; tags = []; };
      };
    };
    nixosConfigurations = { a = throw "no"; b = throw "no"; };
  }`);
  const r = await nixfleet(['import', '--from', 'colmena', dir, '--repository', 'acme/hive']);
  expect(r.code).toBe(EXIT.ok);
  expect(parseFleetFile(r.out).hosts).toEqual([
    { name: 'a', address: 'a.example.net', kind: 'nixos' },
    { name: 'b', address: '2001:db8::5', port: 2201, kind: 'nixos' },
  ]);
});

test('when deploy-rs nodes cannot be mapped, then every problem is named by node and field, and no file is written', async () => {
  const dir = flake(`{
    deploy.nodes = {
      keyed = { hostname = "k.example.net"; sshOpts = [ "-i" "/root/key" ]; profiles.system.path = throw "no"; };
      sudo = { hostname = "s.example.net"; sshUser = "deploy"; user = "root"; profiles.system.path = throw "no"; };
      orphan = { hostname = "o.example.net"; profiles.system.path = throw "no"; };
      hm = { hostname = "h.example.net"; profiles.bob = { user = "bob"; path = throw "no"; }; };
      nohost = { profiles.system.path = throw "no"; };
    };
    nixosConfigurations = { keyed = {}; sudo = {}; nohost = {}; };
  }`);
  const out = join(base, 'refused.yaml');
  const r = await nixfleet(['import', '--from', 'deploy-rs', dir, '--repository', 'acme/fleet', '--out', out]);
  expect(r.code).toBe(EXIT.usage);
  const lines = r.err.split('\n');
  expect(lines).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^deploy\.nodes\.keyed\.sshOpts: the SSH option "-i" cannot be mapped/),
      expect.stringMatching(/^deploy\.nodes\.sudo\.sshUser: "deploy" logs in and deploy-rs switches with sudo/),
      expect.stringMatching(/^deploy\.nodes\.orphan\.profiles\.system: the flake has no nixosConfigurations\.orphan/),
      expect.stringMatching(/^deploy\.nodes\.hm\.profiles\.bob: no homeConfigurations\."bob@hm", \.bob or \.bob in the flake/),
      expect.stringMatching(/^deploy\.nodes\.nohost\.hostname: missing/),
    ]),
  );
  expect(lines).toHaveLength(5);
  expect(existsSync(out)).toBe(false);
});

test('when a mapped value breaks the fleet file schema, then the error names the flake attribute and the fleet field', async () => {
  const dir = flake(`{
    deploy.nodes.web1 = { hostname = "web 1; rm -rf /"; profiles.system.path = throw "no"; };
    nixosConfigurations.web1 = {};
  }`);
  const r = await nixfleet(['import', '--from', 'deploy-rs', dir, '--repository', 'acme/fleet']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.err).toMatch(/^deploy\.nodes\.web1\.hostname \(hosts\[0\]\.address\): a DNS host name/);
  expect(r.out).toBe('');
});

test('when a colmena field needs nixpkgs, or a hive is missing, then the import says so by node and field', async () => {
  const dir = flake(`{
    colmena = {
      meta.nixpkgs = throw "no";
      web = { lib, ... }: { deployment.targetHost = lib.mkForce "web.example.net"; };
      local = { deployment.targetHost = null; };
      nixless = { deployment.targetHost = "n.example.net"; };
      sudoer = { deployment = { targetHost = "s.example.net"; targetUser = "ops"; }; };
    };
    nixosConfigurations = { web = {}; local = {}; sudoer = {}; };
  }`);
  const r = await nixfleet(['import', '--from', 'colmena', dir, '--repository', 'acme/hive']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.err.split('\n').sort()).toEqual([
    expect.stringMatching(/^colmena\.local\.deployment\.targetHost: null \(local deployment only\)/),
    expect.stringMatching(/^colmena\.nixless: the flake has no nixosConfigurations\.nixless/),
    expect.stringMatching(/^colmena\.sudoer\.deployment\.targetUser: "ops": colmena switches as this user with sudo/),
    expect.stringMatching(/^colmena\.web\.deployment\.targetHost: cannot be read without evaluating nixpkgs/),
  ]);

  const none = await nixfleet(['import', '--from', 'deploy-rs', dir, '--repository', 'acme/hive']);
  expect(none.code).toBe(EXIT.usage);
  expect(none.err).toMatch(/has no "deploy" output/);
});

test('when import is called without --from, a flake or a repository, or with an option-like flake, then it is a usage error', async () => {
  expect((await nixfleet(['import', '/x', '--repository', 'a/b'])).code).toBe(EXIT.usage);
  expect((await nixfleet(['import', '--from', 'nixops', '/x', '--repository', 'a/b'])).code).toBe(EXIT.usage);
  expect((await nixfleet(['import', '--from', 'colmena', '/x'])).err).toMatch(/--repository OWNER\/NAME/);
  expect((await nixfleet(['import', '--from', 'colmena', '--repository', 'a/b', '--', '--impure'])).err).toMatch(/FLAKE: a flake reference/);
  expect((await nixfleet(['import', '--from', 'colmena', '--repository', 'a/b', '/x#colmena'])).err).toMatch(/without "#"/);
});
