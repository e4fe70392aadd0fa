/**
 * The flake the stand-in hosts build. It has no real inputs: its outputs are `builtins.derivation`s
 * with `builder = "/bin/sh"` that build in tens of milliseconds offline. Every output depends on the
 * CONTENT of flake.lock (its sha256 is an input of each derivation and the lock's version marker is
 * part of the store path name), so a flake.lock update changes every host's closure and restoring
 * flake.lock restores the old store paths exactly.
 *
 * flake.lock carries an extra node that nothing references:
 *   {"nodes":{"root":{},"pins":{"version":"v2"}},"root":"root","version":7}
 * Nix 2.8 accepts it as is (it neither rewrites the file nor warns): checked in tests/fleet.
 */

export interface FleetFlakeOptions {
  /** The version marker written into flake.lock (`nodes.pins.version`); [A-Za-z0-9._+-]+. */
  version: string;
  /** Nix system of the derivations; defaults to this machine's (x86_64-linux / aarch64-linux). */
  system?: string;
  /** Extra fields for the `pins` node, to make two locks of the same version differ. */
  extraPins?: Record<string, string>;
  /**
   * The kernel version of every toplevel (`nodes.pins.kernel`, default STANDIN_KERNEL): its kernel,
   * initrd and kernel modules are store paths of their own, shared by every toplevel of that version,
   * so an update that changes it needs a reboot (a NixOS host compares them with /run/booted-system).
   */
  kernel?: string;
}

/** The kernel version of a toplevel whose flake.lock names none (and of the seeded generations). */
export const STANDIN_KERNEL = '6.6.0';

export interface FleetFlakeFiles {
  'flake.nix': string;
  'flake.lock': string;
}

const SAFE_TOKEN = /^[A-Za-z0-9._+-]{1,64}$/;
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;

export function nixSystem(): string {
  if (process.arch === 'x64') return 'x86_64-linux';
  if (process.arch === 'arm64') return 'aarch64-linux';
  throw new Error(`stand-in fleet: unsupported architecture ${process.arch}`);
}

/** A Nix double-quoted string literal for `s` (ASCII only). */
function nixString(s: string): string {
  if (!/^[\x20-\x7e\n\t]*$/.test(s)) throw new Error('nixString: ASCII only');
  return JSON.stringify(s).replace(/\$\{/g, '\\${');
}

/**
 * The script that lays out a NixOS toplevel in $out (env: out, host, version, lockHash). Like a real
 * toplevel, its tools do not depend on the caller's PATH (a transient unit has none of Nix or
 * coreutils): bin/switch-to-configuration and sw/bin/{nix-env,systemd-run,systemctl,readlink,flock} (the
 * system path's tools) reach the host's stand-in tools through /run/nixfleet-standin/env.
 */
export const TOPLEVEL_BUILDER = `set -e
mkdir -p "$out/bin" "$out/sw/bin"
printf '%s\\n' "$version" > "$out/nixos-version"
printf '%s\\n' "$host" > "$out/host"
printf '%s\\n' "$lockHash" > "$out/lock-hash"
# As a real toplevel: kernel, initrd and kernel-modules link to store paths of their own.
if [ -n "\${kernel:-}" ]; then ln -s "$kernel" "$out/kernel"; ln -s "$initrd" "$out/initrd"; ln -s "$kernelModules" "$out/kernel-modules"; fi
cat > "$out/bin/switch-to-configuration" <<'EOS'
#!/bin/sh
# Stand-in switch-to-configuration: the activation itself is the host's nixfleet-standin-activate.
. /run/nixfleet-standin/env
top=$(cd "\${0%/*}/.." && pwd -P)
exec "$NIXFLEET_STANDIN_BIN/nixfleet-standin-activate" "$top" "$@"
EOS
chmod 0555 "$out/bin/switch-to-configuration"
for t in nix-env systemd-run systemctl; do
  printf '#!/bin/sh\\n. /run/nixfleet-standin/env\\nexec "$NIXFLEET_STANDIN_BIN/%s" "$@"\\n' "$t" > "$out/sw/bin/$t"
  chmod 0555 "$out/sw/bin/$t"
done
ln -s /usr/bin/readlink "$out/sw/bin/readlink"
ln -s /usr/bin/flock "$out/sw/bin/flock"
`;

/** The script that lays out a Home Manager activationPackage in $out (env: out, host, version, lockHash). */
export const HM_BUILDER = `set -e
mkdir -p "$out"
printf '%s\\n' "$version" > "$out/hm-version"
printf '%s\\n' "$host" > "$out/host"
printf '%s\\n' "$lockHash" > "$out/lock-hash"
cat > "$out/activate" <<'EOS'
#!/bin/sh
# Stand-in Home Manager activate: the activation itself is the host's nixfleet-standin-hm-activate.
. /run/nixfleet-standin/env
self=$(cd "\${0%/*}" && pwd -P)
exec "$NIXFLEET_STANDIN_BIN/nixfleet-standin-hm-activate" "$self" "$@"
EOS
chmod 0555 "$out/activate"
`;

/**
 * The Nix expression of a kernel version's three boot parts (the same `builtins.toFile` the flake
 * evaluates, so the same store paths): `kernel initrd kernelModules`, space-separated.
 */
export function standinKernelExpr(kernelVersion: string = STANDIN_KERNEL): string {
  if (!SAFE_TOKEN.test(kernelVersion)) throw new Error(`standinKernelExpr: invalid kernel ${JSON.stringify(kernelVersion)}`);
  const v = kernelVersion;
  return `"\${builtins.toFile "linux-${v}-bzImage" "stand-in kernel ${v}\\n"} \${builtins.toFile "initrd-linux-${v}" "stand-in initrd ${v}\\n"} \${builtins.toFile "linux-${v}-modules" "stand-in modules ${v}\\n"}"`;
}

export function fleetFlakeLock(opts: FleetFlakeOptions): string {
  if (!SAFE_TOKEN.test(opts.version)) throw new Error(`fleetFlakeFiles: invalid version ${JSON.stringify(opts.version)}`);
  const pins: Record<string, string> = { version: opts.version };
  if (opts.kernel !== undefined) {
    if (!SAFE_TOKEN.test(opts.kernel)) throw new Error(`fleetFlakeFiles: invalid kernel ${JSON.stringify(opts.kernel)}`);
    pins.kernel = opts.kernel;
  }
  for (const [k, v] of Object.entries(opts.extraPins ?? {})) {
    if (!/^[A-Za-z0-9_]{1,32}$/.test(k) || !/^[\x20-\x7e]{0,200}$/.test(v)) throw new Error(`fleetFlakeFiles: invalid pin ${k}`);
    if (k !== 'version') pins[k] = v;
  }
  return JSON.stringify({ nodes: { root: {}, pins }, root: 'root', version: 7 }, null, 2) + '\n';
}

/**
 * flake.nix + flake.lock for `hostNames`: every host gets both
 * `nixosConfigurations.<host>.config.system.build.toplevel` and
 * `homeConfigurations.<host>.activationPackage`.
 */
export function fleetFlakeFiles(hostNames: readonly string[], opts: FleetFlakeOptions): FleetFlakeFiles {
  for (const h of hostNames) {
    if (!HOST_NAME.test(h)) throw new Error(`fleetFlakeFiles: invalid host name ${JSON.stringify(h)}`);
  }
  const system = opts.system ?? nixSystem();
  const lock = fleetFlakeLock(opts);
  const hosts = hostNames.map((h) => nixString(h)).join(' ');
  const flakeNix = `{
  description = "NixFleet stand-in fleet (generated by testkit/fleet/flake.ts)";

  outputs = { self }:
    let
      lockText = builtins.readFile ./flake.lock;
      lock = builtins.fromJSON lockText;
      version = lock.nodes.pins.version or "unversioned";
      lockHash = builtins.hashString "sha256" lockText;
      system = ${nixString(system)};
      hosts = [ ${hosts} ];
      kernelVersion = lock.nodes.pins.kernel or ${nixString(STANDIN_KERNEL)};
      kernel = builtins.toFile "linux-\${kernelVersion}-bzImage" "stand-in kernel \${kernelVersion}\\n";
      initrd = builtins.toFile "initrd-linux-\${kernelVersion}" "stand-in initrd \${kernelVersion}\\n";
      kernelModules = builtins.toFile "linux-\${kernelVersion}-modules" "stand-in modules \${kernelVersion}\\n";
      mk = name: host: script: builtins.derivation {
        inherit name system host version lockHash kernel initrd kernelModules;
        builder = "/bin/sh";
        args = [ "-c" script ];
        PATH = "/usr/bin:/bin";
      };
      forHosts = f: builtins.listToAttrs (map (host: { name = host; value = f host; }) hosts);
    in {
      nixosConfigurations = forHosts (host: {
        config.system.build.toplevel = mk "nixos-system-\${host}-\${version}" host ${nixString(TOPLEVEL_BUILDER)};
      });
      homeConfigurations = forHosts (host: {
        activationPackage = mk "home-manager-generation" host ${nixString(HM_BUILDER)};
      });
    };
}
`;
  return { 'flake.nix': flakeNix, 'flake.lock': lock };
}
