/**
 * `nixfleet import --from deploy-rs|colmena FLAKE`: a fleet file from a flake's deploy-rs `deploy.nodes`
 * or colmena hive, as `nix eval --json` reads them. Only the connection settings are read (host name,
 * SSH user and port, profile names); a profile's `path` or a node's NixOS configuration is never forced,
 * so a large fleet imports in a second. What cannot be mapped onto a fleet host is an error naming the
 * node and the field (`deploy.nodes.web1.sshOpts: …`), never a silently different fleet.
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { FleetFile, InputError, formatZodError } from '../schemas/fleet.schema';

export type ImportSource = 'deploy-rs' | 'colmena';

/** A value `nix eval --json` cannot show (a function, a derivation's path…), or one that threw. */
interface Unreadable {
  __nixfleetUnreadable: string;
}

/**
 * Nix: a value made JSON-safe without forcing more than it must. Scalars and lists of scalars pass;
 * anything else becomes `{ __nixfleetUnreadable = "<type>"; }`, and a value whose evaluation throws
 * (it needs nixpkgs' `lib` or `pkgs`, which an import does not evaluate) `"error"`.
 */
const PLAIN = `let
  plain = v: let r = builtins.tryEval v; in
    if !r.success then { __nixfleetUnreadable = "error"; }
    else let t = builtins.typeOf r.value; in
      if builtins.elem t [ "string" "int" "bool" "null" "float" ] then r.value
      else if t == "list" then map plain r.value
      else { __nixfleetUnreadable = t; };
  field = s: n: if builtins.isAttrs s && s ? \${n} then plain s.\${n} else null;
  settings = s: { sshUser = field s "sshUser"; user = field s "user"; sshOpts = field s "sshOpts"; };
in`;

/** deploy-rs: `deploy` = generic settings + `nodes.<n>` = settings + hostname + profiles.<p>. */
export const DEPLOY_RS_APPLY = `${PLAIN} deploy: (settings deploy) // {
  nodes = builtins.mapAttrs (name: node: (settings node) // {
    isAttrs = builtins.isAttrs node;
    hostname = field node "hostname";
    profilesOrder = field node "profilesOrder";
    profiles = if builtins.isAttrs node && builtins.isAttrs (node.profiles or null)
      then builtins.mapAttrs (p: profile: settings profile) node.profiles else null;
  }) (deploy.nodes or {});
}`;

/**
 * colmena, a raw hive (`outputs.colmena`): every attribute but `meta` and `defaults` is a node, a NixOS
 * module (an attribute set or a function of `{ name, nodes, pkgs, lib, config, … }`). Without nixpkgs
 * the module system cannot run, so only the node's own module and `defaults` are read, as plain
 * values: a node function gets `name` and `meta.specialArgs`; `pkgs`, `lib`, `config` and `nodes`
 * throw when used, and a field that needs them is reported as unreadable.
 */
export const COLMENA_APPLY = `${PLAIN} hive: let
  meta = hive.meta or {};
  specialArgs = if builtins.isAttrs meta && builtins.isAttrs (meta.specialArgs or null) then meta.specialArgs else {};
  noEval = what: throw "nixfleet import does not evaluate \${what}";
  call = name: m: if builtins.isFunction m then
      m (builtins.intersectAttrs (builtins.functionArgs m) (specialArgs // {
        inherit name;
        nodes = noEval "nodes"; pkgs = noEval "pkgs"; lib = noEval "lib"; config = noEval "config";
        options = noEval "options"; modulesPath = noEval "modulesPath";
      }))
    else m;
  module = name: m: let r = builtins.tryEval (call name m); in if r.success && builtins.isAttrs r.value then r.value else {};
  deployment = name: m: let d = (module name m).deployment or {}; in if builtins.isAttrs d then d else {};
  defaults = name: deployment name (hive.defaults or {});
  pick = d: n: if d ? \${n} then { set = true; value = plain d.\${n}; } else { set = false; };
  names = builtins.filter (n: n != "meta" && n != "defaults") (builtins.attrNames hive);
in builtins.listToAttrs (map (name: let own = deployment name hive.\${name}; dflt = defaults name; in {
  inherit name;
  value = {
    hasImports = (module name hive.\${name}) ? imports;
    targetHost = pick own "targetHost"; targetPort = pick own "targetPort"; targetUser = pick own "targetUser";
    defaultHost = pick dflt "targetHost"; defaultPort = pick dflt "targetPort"; defaultUser = pick dflt "targetUser";
  };
}) names)`;

/** colmena, a hive made by `colmena.lib.makeHive` (`outputs.colmenaHive`): evaluated deployment options. */
export const COLMENA_HIVE_APPLY = `${PLAIN} hive: builtins.mapAttrs (name: d: {
  hasImports = false;
  targetHost = { set = true; value = plain d.targetHost; };
  targetPort = { set = true; value = plain d.targetPort; };
  targetUser = { set = true; value = plain d.targetUser; };
  defaultHost = { set = false; }; defaultPort = { set = false; }; defaultUser = { set = false; };
}) hive.deploymentConfig`;

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null(), z.strictObject({ __nixfleetUnreadable: z.string() })]);
type Scalar = z.infer<typeof Scalar>;
const Value = z.union([Scalar, z.array(z.unknown())]);
const Settings = { sshUser: Value, user: Value, sshOpts: Value };
const DeployRsEval = z.object({
  ...Settings,
  nodes: z.record(
    z.string(),
    z.object({
      ...Settings,
      isAttrs: z.boolean(),
      hostname: Value,
      profilesOrder: Value,
      profiles: z.record(z.string(), z.object(Settings)).nullable(),
    }),
  ),
});
export type DeployRsEval = z.infer<typeof DeployRsEval>;
const Pick = z.union([z.object({ set: z.literal(false) }), z.object({ set: z.literal(true), value: Value })]);
const ColmenaEval = z.record(
  z.string(),
  z.object({ hasImports: z.boolean(), targetHost: Pick, targetPort: Pick, targetUser: Pick, defaultHost: Pick, defaultPort: Pick, defaultUser: Pick }),
);
export type ColmenaEval = z.infer<typeof ColmenaEval>;

/** What the import found in the flake besides the tool's own attributes. */
export interface FlakeOutputs {
  nixosConfigurations: string[];
  homeConfigurations: string[];
}

export interface ImportOptions {
  repository: { owner: string; name: string; branch?: string };
}

/** One fleet host and, per fleet field, where in the flake its value came from. */
interface Mapped {
  host: Record<string, unknown>;
  origin: Record<string, string>;
}

const isUnreadable = (v: unknown): v is Unreadable => typeof v === 'object' && v !== null && '__nixfleetUnreadable' in v;
const attrPath = (...parts: string[]): string => parts.map((p) => (/^[A-Za-z_][A-Za-z0-9_'-]*$/.test(p) ? p : JSON.stringify(p))).join('.');

class Problems {
  readonly lines: string[] = [];
  add(field: string, message: string): void {
    this.lines.push(`${field}: ${message}`);
  }
  /** A value that must be a string (or absent); unreadable values and other types are reported. */
  string(field: string, v: unknown): string | undefined {
    if (v === null || v === undefined) return undefined;
    if (typeof v === 'string') return v;
    if (isUnreadable(v)) {
      this.add(field, v.__nixfleetUnreadable === 'error' ? 'cannot be read without evaluating nixpkgs (it uses pkgs, lib, config or nodes, or throws); set it as a plain string' : `a ${v.__nixfleetUnreadable}, expected a string`);
    } else this.add(field, `expected a string, got ${JSON.stringify(v)}`);
    return undefined;
  }
}

/**
 * deploy-rs `sshOpts` → an SSH port. `-p N`, `-pN`, `-o Port=N`, `-oPort=N` map; any other option is
 * refused by name: the deployer connects with its own SSH client and settings (known_hosts, key), so
 * an option it would silently drop could connect it somewhere else.
 */
export function portFromSshOpts(field: string, v: unknown, problems: Problems): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) {
    problems.add(field, `a list of strings, got ${JSON.stringify(v)}`);
    return undefined;
  }
  let port: string | undefined;
  for (let i = 0; i < v.length; i++) {
    const a = v[i]!;
    const next = v[i + 1];
    let m: RegExpExecArray | null;
    if (a === '-p' && next !== undefined) {
      port = next;
      i++;
    } else if ((m = /^-p(.+)$/.exec(a))) port = m[1];
    else if (a === '-o' && next !== undefined && (m = /^Port[= ](.+)$/i.exec(next))) {
      port = m[1];
      i++;
    } else if ((m = /^-oPort[= ](.+)$/i.exec(a))) port = m[1];
    else {
      problems.add(field, `the SSH option ${JSON.stringify(a)} cannot be mapped (only -p PORT / -o Port=PORT are; the deployer uses its own key and known_hosts)`);
      return undefined;
    }
  }
  if (port === undefined) return undefined;
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    problems.add(field, `port ${JSON.stringify(port)}: a number from 1 to 65535`);
    return undefined;
  }
  return Number(port);
}

/**
 * deploy-rs nodes → fleet hosts. A node's `system` profile is a NixOS host named after the node (built
 * as `nixosConfigurations.<node>`); any other profile deployed as a non-root `user` is a Home Manager
 * host `<node>-<profile>` (built from `homeConfigurations."<user>@<node>"`, `.<profile>` or `.<user>`,
 * the first the flake has). Settings inherit deploy → node → profile, as in deploy-rs.
 */
export function mapDeployRs(ev: DeployRsEval, outputs: FlakeOutputs, problems: Problems): Mapped[] {
  const out: Mapped[] = [];
  const names = Object.keys(ev.nodes);
  if (names.length === 0) problems.add('deploy.nodes', 'no nodes');
  for (const node of names) {
    const n = ev.nodes[node]!;
    const at = (...p: string[]): string => attrPath('deploy', 'nodes', node, ...p);
    if (!n.isAttrs) {
      problems.add(at(), 'a node must be an attribute set');
      continue;
    }
    const hostname = problems.string(at('hostname'), n.hostname);
    if (hostname === undefined && n.hostname === null) problems.add(at('hostname'), 'missing (deploy-rs requires it)');
    if (!n.profiles || Object.keys(n.profiles).length === 0) {
      problems.add(at('profiles'), 'no profiles');
      continue;
    }
    const order = Array.isArray(n.profilesOrder) ? n.profilesOrder.filter((p): p is string => typeof p === 'string') : [];
    const profiles = [...order.filter((p) => p in n.profiles!), ...Object.keys(n.profiles).filter((p) => !order.includes(p))];
    for (const profile of profiles) {
      const p = n.profiles[profile]!;
      const pick = (k: 'sshUser' | 'user' | 'sshOpts'): [string, unknown] =>
        p[k] !== null ? [at('profiles', profile, k), p[k]] : n[k] !== null ? [at(k), n[k]] : [attrPath('deploy', k), ev[k]];
      const [sshUserField, sshUserV] = pick('sshUser');
      const [userField, userV] = pick('user');
      const [optsField, optsV] = pick('sshOpts');
      const sshUser = problems.string(sshUserField, sshUserV);
      const user = problems.string(userField, userV) ?? sshUser;
      const port = portFromSshOpts(optsField, optsV, problems);
      const origin: Record<string, string> = { address: at('hostname') };
      if (port !== undefined) origin.port = optsField;
      if (profile === 'system') {
        if (user !== undefined && user !== 'root') {
          problems.add(user === userV ? userField : sshUserField, `the system profile deployed as ${JSON.stringify(user)}: a NixOS host is deployed as root`);
          continue;
        }
        if (sshUser !== undefined && sshUser !== 'root') {
          problems.add(sshUserField, `${JSON.stringify(sshUser)} logs in and deploy-rs switches with sudo; the deployer switches NixOS as the SSH user: log in as root (sshUser = "root")`);
          continue;
        }
        if (!outputs.nixosConfigurations.includes(node)) {
          problems.add(at('profiles', 'system'), `the flake has no nixosConfigurations.${attrPath(node)}, which the deployer builds for this host`);
          continue;
        }
        origin.name = at();
        out.push({ host: { name: node, address: hostname, ...(port !== undefined ? { port } : {}), kind: 'nixos' }, origin });
      } else {
        if (user === undefined || user === 'root') {
          problems.add(at('profiles', profile), 'a profile other than "system" maps to a Home Manager host, deployed as its (non-root) user; this one has no user or root');
          continue;
        }
        if (sshUser !== undefined && sshUser !== user) {
          problems.add(sshUserField, `logs in as ${JSON.stringify(sshUser)} to deploy as ${JSON.stringify(user)}; the deployer logs in as the Home Manager user itself`);
          continue;
        }
        const attr = [`${user}@${node}`, profile, user].find((a) => outputs.homeConfigurations.includes(a));
        if (attr === undefined) {
          problems.add(at('profiles', profile), `no homeConfigurations.${attrPath(`${user}@${node}`)}, .${attrPath(profile)} or .${attrPath(user)} in the flake, which the deployer builds for this host`);
          continue;
        }
        origin.name = at('profiles', profile);
        origin.user = user === userV ? userField : sshUserField;
        origin.attr = at('profiles', profile);
        out.push({ host: { name: `${node}-${profile}`, address: hostname, ...(port !== undefined ? { port } : {}), user, kind: 'home-manager', attr }, origin });
      }
    }
  }
  return out;
}

/**
 * colmena nodes → NixOS hosts: `deployment.targetHost` (default: the node's name), `targetPort`,
 * `targetUser` (default root), each from the node's own module, else `defaults`. colmena deploys a
 * node as `targetUser` with sudo when it is not root; the deployer switches as the SSH user, so a
 * non-root `targetUser` is refused. A node whose targetHost is null (local deployment only) has no
 * address to reach.
 */
export function mapColmena(ev: ColmenaEval, outputs: FlakeOutputs, root: string, problems: Problems): Mapped[] {
  const out: Mapped[] = [];
  const names = Object.keys(ev);
  if (names.length === 0) problems.add(root, 'no nodes');
  for (const node of names) {
    const n = ev[node]!;
    const at = (...p: string[]): string => attrPath(root, node, ...p);
    const get = (own: z.infer<typeof Pick>, dflt: z.infer<typeof Pick>, field: string): [string, unknown] | undefined =>
      own.set ? [at('deployment', field), own.value] : dflt.set ? [attrPath(root, 'defaults', 'deployment', field), dflt.value] : undefined;
    const hostPick = get(n.targetHost, n.defaultHost, 'targetHost');
    const portPick = get(n.targetPort, n.defaultPort, 'targetPort');
    const userPick = get(n.targetUser, n.defaultUser, 'targetUser');
    const unsetNote = n.hasImports ? ' (this node has imports, which are not read without nixpkgs: set it in the node itself, or use colmena.lib.makeHive as colmenaHive)' : '';
    let address: string | undefined = node;
    const origin: Record<string, string> = { name: at(), address: at() };
    if (hostPick) {
      origin.address = hostPick[0];
      if (hostPick[1] === null) {
        problems.add(hostPick[0], `null (local deployment only): the deployer needs an address to reach this node over SSH${unsetNote}`);
        continue;
      }
      address = problems.string(hostPick[0], hostPick[1]);
      if (address === undefined) continue;
    }
    let port: number | undefined;
    if (portPick && portPick[1] !== null) {
      if (typeof portPick[1] !== 'number' || !Number.isInteger(portPick[1])) {
        problems.add(portPick[0], isUnreadable(portPick[1]) ? 'cannot be read without evaluating nixpkgs; set it as a plain number' : `a port number, got ${JSON.stringify(portPick[1])}`);
        continue;
      }
      port = portPick[1];
      origin.port = portPick[0];
    }
    if (userPick) {
      const user = problems.string(userPick[0], userPick[1]);
      if (user === undefined) continue;
      if (user !== 'root') {
        problems.add(userPick[0], `${JSON.stringify(user)}: colmena switches as this user with sudo; the deployer switches NixOS as the SSH user, so log in as root`);
        continue;
      }
    }
    if (!outputs.nixosConfigurations.includes(node)) {
      problems.add(at(), `the flake has no nixosConfigurations.${attrPath(node)}, which the deployer builds for this host (with makeHive: nixosConfigurations = self.colmenaHive.nodes;)${unsetNote}`);
      continue;
    }
    out.push({ host: { name: node, address, ...(port !== undefined ? { port } : {}), kind: 'nixos' }, origin });
  }
  return out;
}

/**
 * The fleet file for the mapped hosts, validated by the fleet file schema. A schema error on a host's
 * field names where that value came from in the flake as well (`deploy.nodes.web1.hostname (hosts[0].address): …`).
 */
export function buildFleetDocument(mapped: Mapped[], opts: ImportOptions, problems: Problems): Record<string, unknown> {
  if (problems.lines.length > 0) throw new InputError(problems.lines.join('\n'));
  const doc: Record<string, unknown> = {
    repository: { owner: opts.repository.owner, name: opts.repository.name, branch: opts.repository.branch ?? 'main' },
    hosts: mapped.map((m) => m.host),
  };
  const r = FleetFile.safeParse(doc);
  if (!r.success) {
    const lines = r.error.issues.map((issue) => {
      const [a, i, field] = issue.path;
      const from = a === 'hosts' && typeof i === 'number' ? mapped[i]?.origin[String(field ?? 'name')] ?? mapped[i]?.origin.name : undefined;
      const line = formatZodError(new z.ZodError([issue]));
      return from ? `${from} (${line.replace(/: /, '): ')}` : line;
    });
    throw new InputError(lines.join('\n'));
  }
  return doc;
}

export type NixEval = (flake: string, attr: string, apply: string) => Promise<unknown>;

/** Thrown by a NixEval when the flake has no such output. */
export class MissingOutput extends Error {}

/**
 * `nix eval --json FLAKE#ATTR --apply FN`, with the flakes features on and the lock file left alone.
 * No shell: the arguments go to nix as they are.
 */
export function nixEval(env: NodeJS.ProcessEnv, nix = env.NIXFLEET_NIX ?? 'nix'): NixEval {
  return (flake, attr, apply) =>
    new Promise((resolve, reject) => {
      execFile(
        nix,
        ['--extra-experimental-features', 'nix-command flakes', 'eval', '--json', '--no-write-lock-file', `${flake}#${attr}`, '--apply', apply],
        { env, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            const text = stderr.trim() || err.message;
            if (/does not provide attribute/.test(text)) reject(new MissingOutput(text));
            else reject(new Error(`nix eval ${flake}#${attr} failed: ${text}`));
            return;
          }
          try {
            resolve(JSON.parse(stdout));
          } catch (e) {
            reject(new Error(`nix eval ${flake}#${attr}: not JSON: ${(e as Error).message}`));
          }
        },
      );
    });
}

/**
 * The flake reference as nix takes it: a local directory becomes its absolute path (Nix reads a bare
 * `dir` as a registry name and would go to the network). It is an argument, never a shell word, but an
 * option-looking or `#`-carrying reference is refused (the attribute is the import's to choose).
 */
export function flakeArg(ref: string, cwd = process.cwd()): string {
  if (!ref || ref.startsWith('-') || ref.includes('#') || [...ref].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw new InputError(`import: FLAKE: a flake reference (a directory, path:…, git+…, github:…) without "#" and not starting with "-", got ${JSON.stringify(ref)}`);
  }
  if (!/^[a-z][a-z0-9+]*:/.test(ref)) {
    const dir = resolvePath(cwd, ref);
    if (existsSync(dir) && statSync(dir).isDirectory()) return dir;
  }
  return ref;
}

async function attrNames(ev: NixEval, flake: string, attr: string): Promise<string[]> {
  try {
    const names = await ev(flake, attr, 'builtins.attrNames');
    return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
  } catch (err) {
    if (err instanceof MissingOutput) return [];
    throw err;
  }
}

function parseEval<T>(schema: z.ZodType<T>, v: unknown, what: string): T {
  const r = schema.safeParse(v);
  if (!r.success) throw new Error(`${what}: unexpected shape from nix eval: ${formatZodError(r.error)}`);
  return r.data;
}

/** Evaluates the flake and returns the fleet file's text (YAML), validated. */
export async function importFleet(source: ImportSource, flakeRef: string, opts: ImportOptions, ev: NixEval): Promise<{ yaml: string; hosts: string[] }> {
  const flake = flakeArg(flakeRef);
  const outputs: FlakeOutputs = {
    nixosConfigurations: await attrNames(ev, flake, 'nixosConfigurations'),
    homeConfigurations: await attrNames(ev, flake, 'homeConfigurations'),
  };
  const problems = new Problems();
  let mapped: Mapped[];
  let from: string;
  if (source === 'deploy-rs') {
    let raw: unknown;
    try {
      raw = await ev(flake, 'deploy', DEPLOY_RS_APPLY);
    } catch (err) {
      if (err instanceof MissingOutput) throw new InputError(`import: ${flakeRef} has no "deploy" output (deploy-rs's deploy.nodes)`);
      throw err;
    }
    mapped = mapDeployRs(parseEval(DeployRsEval, raw, 'deploy'), outputs, problems);
    from = 'deploy-rs deploy.nodes';
  } else {
    let raw: unknown;
    let root = 'colmenaHive';
    try {
      raw = await ev(flake, 'colmenaHive', COLMENA_HIVE_APPLY);
    } catch (err) {
      if (!(err instanceof MissingOutput)) throw err;
      root = 'colmena';
      try {
        raw = await ev(flake, 'colmena', COLMENA_APPLY);
      } catch (err2) {
        if (err2 instanceof MissingOutput) throw new InputError(`import: ${flakeRef} has no "colmena" or "colmenaHive" output (a colmena hive)`);
        throw err2;
      }
    }
    mapped = mapColmena(parseEval(ColmenaEval, raw, root), outputs, root, problems);
    from = `colmena hive (${root})`;
  }
  const doc = buildFleetDocument(mapped, opts, problems);
  const yaml = `# Imported by \`nixfleet import --from ${source}\` from the ${from} of ${flakeRef}.\n# Review it: add rollout waves, health checks and onFailure as the fleet needs.\n${toYaml(doc)}`;
  return { yaml, hosts: mapped.map((m) => String(m.host.name)) };
}

export { Problems };
