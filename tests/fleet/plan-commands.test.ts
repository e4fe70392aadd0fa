/**
 * The dry run's commands are the ones a switch sends: Home Manager's switch under its profile's lock
 * (the lock beside the profile the host reported), NixOS's activation under the host's lock.
 */
import { planSwitchCommands } from '../../src/hosts';

const ref = 'git+https://example.org/fleet.git?ref=main&rev=0000000000000000000000000000000000000000';

test('Home Manager: the switch is planned under the lock beside the profile the host reported', () => {
  const plan = planSwitchCommands({ name: 'alice', kind: 'home-manager', attr: 'alice' }, ref, '/home/alice/.local/state/nix/profiles/home-manager');
  expect(plan[1]).toBe(`{ flock -n 9 || exit 75; exec home-manager switch --flake '${ref}#alice'; } 9>'/home/alice/.local/state/nix/profiles/nixfleet-activation.lock'`);
  // Before the host was read: the lock's place is named, not guessed.
  expect(planSwitchCommands({ name: 'alice', kind: 'home-manager', attr: 'alice' }, ref)[1]).toContain("9>'<home-manager profiles>/nixfleet-activation.lock'");
  // The build holds the build lock beside the profile (a cancel or timeout stops it by that lock).
  expect(plan[0]).toBe(`{ exec nix build --no-link --json '${ref}#homeConfigurations."alice".activationPackage'; } 9>'/home/alice/.local/state/nix/profiles/nixfleet-build.lock'`);
});

test('NixOS: the activation under the host lock; a switch template as given', () => {
  expect(planSwitchCommands({ name: 'h', kind: 'nixos', attr: 'h' }, ref)[0]).toBe(`{ exec nix build --no-link --json '${ref}#nixosConfigurations."h".config.system.build.toplevel'; } 9>/run/nixfleet-build.lock`);
  expect(planSwitchCommands({ name: 'h', kind: 'nixos', attr: 'h' }, ref)[2]).toBe("{ flock -n 9 || exit 75; exec '<target>'/bin/switch-to-configuration switch; } 9>/run/nixfleet-activation.lock");
  expect(planSwitchCommands({ name: 'h', kind: 'nixos', attr: 'h', commands: { switch: 'nixos-rebuild switch --flake {flake}' } }, ref)[1]).toBe(`nixos-rebuild switch --flake '${ref}#h'`);
});
