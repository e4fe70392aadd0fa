/**
 * Everything interpolated into a remote command passes a strict validator AND is POSIX
 * single-quoted. Validation errors name the field.
 */
import { InvalidInputError } from './errors';

/** POSIX shell single-quoting: `'…'`, with every `'` written as `'\''`. Safe for any string without NUL. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new InvalidInputError('value', 'contains a NUL byte');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function check(field: string, value: unknown, re: RegExp, what: string, max = 1024): string {
  if (typeof value !== 'string') throw new InvalidInputError(field, `must be a string (${what})`);
  if (value.length === 0) throw new InvalidInputError(field, `must not be empty (${what})`);
  if (value.length > max) throw new InvalidInputError(field, `longer than ${max} characters`);
  if (!re.test(value)) throw new InvalidInputError(field, `must be ${what}; got ${JSON.stringify(value.slice(0, 80))}`);
  return value;
}

/**
 * A flake reference without the `#attr` part: `git+https://…?rev=SHA`, `git+file:///…`, `github:o/r/SHA`,
 * `path:/…`. No whitespace, quotes, `#`, `$`, backquotes, `;`, `|`, `<`, `>`, `\`, parentheses.
 */
export function validateFlakeRef(value: unknown, field = 'flakeRef'): string {
  check(field, value, /^(?:git\+(?:https?|ssh|file):\/\/|https?:\/\/|github:|gitlab:|sourcehut:|path:\/|tarball\+https?:\/\/|file\+https?:\/\/)[A-Za-z0-9:/._~?=&%+@,-]*$/, 'a flake reference (git+https://…, git+file://…, github:…, path:/…) with no shell characters or "#"', 2048);
  return value as string;
}

/** A flake attribute name (one path component): letters, digits, `_`, `@`, `+`, `-`, `.`. */
export function validateFlakeAttr(value: unknown, field = 'attr'): string {
  return check(field, value, /^[A-Za-z0-9_][A-Za-z0-9_@+.-]{0,127}$/, 'a flake attribute: letters, digits, "_", "@", "+", "-", "."', 128);
}

/** A Nix store path: `/nix/store/<32 base32 chars>-<name>`. */
export function validateStorePath(value: unknown, field = 'storePath'): string {
  return check(field, value, /^\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]{1,211}$/, 'a Nix store path (/nix/store/<hash>-<name>)', 260);
}

/** A profile generation number: a positive integer. */
export function validateGeneration(value: unknown, field = 'generation'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 2 ** 31) {
    throw new InvalidInputError(field, `must be a positive integer generation number; got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A Unix user name. */
export function validateUser(value: unknown, field = 'user'): string {
  return check(field, value, /^[a-z_][a-z0-9_-]{0,31}$/, 'a Unix user name: lowercase letters, digits, "_", "-"', 32);
}

/** An absolute path of plain characters (profile paths). */
export function validateAbsolutePath(value: unknown, field = 'path'): string {
  check(field, value, /^\/[A-Za-z0-9._/+@-]*$/, 'an absolute path of letters, digits, ".", "_", "/", "+", "@", "-"', 1024);
  if ((value as string).split('/').includes('..')) throw new InvalidInputError(field, 'must not contain ".."');
  return value as string;
}

/** `"attr"` as a Nix attribute-path component (quoted so `@` and `.` inside stay one component). */
export function nixAttrComponent(attr: string): string {
  validateFlakeAttr(attr);
  return `"${attr}"`;
}

// ---- command templates ----

export type TemplateValues = Record<string, string | number>;

const PLACEHOLDER = /\{([A-Za-z]+)\}/g;

/**
 * A command template: a single line of shell with `{name}` placeholders. Placeholders are replaced
 * by the shell-quoted value, so they must stand unquoted in the template (`--flake {flake}`, not
 * `--flake "{flake}"`); `{a}#{b}` concatenates two quoted words into one argument as usual.
 * Any other `{` or `}` is rejected, as are unknown placeholders.
 */
export function validateTemplate(template: unknown, allowed: readonly string[], field = 'template'): string {
  if (typeof template !== 'string' || template.trim().length === 0) throw new InvalidInputError(field, 'must be a non-empty string');
  if (template.length > 1000) throw new InvalidInputError(field, 'longer than 1000 characters');
  if (/[\n\r\0]/.test(template)) throw new InvalidInputError(field, 'must be a single line');
  const stripped = template.replace(PLACEHOLDER, '');
  if (/[{}]/.test(stripped)) throw new InvalidInputError(field, 'braces are only allowed as {placeholder}');
  for (const m of template.matchAll(PLACEHOLDER)) {
    const name = m[1] as string;
    if (!allowed.includes(name)) throw new InvalidInputError(field, `unknown placeholder {${name}} (allowed: ${allowed.map((a) => `{${a}}`).join(', ')})`);
    const before = template[(m.index ?? 0) - 1] ?? ' ';
    const after = template[(m.index ?? 0) + m[0].length] ?? ' ';
    if (before === '"' || before === "'" || after === '"' || after === "'") {
      throw new InvalidInputError(field, `placeholder {${name}} must not be quoted in the template (values are quoted for you)`);
    }
    // What touches a quoted value must not change how the shell reads it: `\'…'` would escape the
    // opening quote, `$'…'` is ANSI-C quoting in bash.
    if (!/[\s=#/:,@};&|]/.test(before) || !/[\s#/:,@{;&|)]/.test(after)) {
      throw new InvalidInputError(field, `placeholder {${name}} must stand alone or next to one of = # / : , @ (found "${before}{${name}}${after}")`);
    }
  }
  return template;
}

/** Fills a validated template; every value is shell-quoted. */
export function renderTemplate(template: string, values: TemplateValues, allowed: readonly string[] = Object.keys(values), field = 'template'): string {
  validateTemplate(template, allowed, field);
  return template.replace(PLACEHOLDER, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new InvalidInputError(field, `placeholder {${name}} has no value here`);
    return shellQuote(String(v));
  });
}
