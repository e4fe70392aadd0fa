import { z } from 'zod';
import { TARGET_NAME } from '../domain/notify-targets';
import { formatZodError, InputError } from './fleet.schema';

/**
 * The worker's notification targets file (NIXFLEET_NOTIFY_TARGETS_FILE, src/domain/notify-targets.ts):
 * an object of target names to `{ url, secret | secretFile }`. Errors name the entry and the field
 * (`oncall.url: an http(s) URL`) and never carry a value: a URL's path may be a token.
 */
const targetName = z.string().regex(TARGET_NAME, 'a target name (a-z, 0-9, "-", starting with a letter, at most 40)');

/** One entry of the targets file before its `secretFile` is read. */
export const TargetEntry = z
  .strictObject(
    {
      url: z.string({ error: 'an http(s) URL' }).max(2000, 'an http(s) URL (at most 2000 characters)').regex(/^https?:\/\/[^\s]+$/, 'an http(s) URL'),
      secret: z.string({ error: 'a string' }).min(1, 'not empty').optional(),
      secretFile: z.string({ error: 'a file path' }).min(1, 'not empty').optional(),
    },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown field ${iss.keys.join(', ')} (url, secret, secretFile)` : 'an object { url, secret | secretFile }') },
  )
  .refine((e) => (e.secret === undefined) !== (e.secretFile === undefined), 'exactly one of secret, secretFile');
export type TargetEntry = z.infer<typeof TargetEntry>;

export const TargetsFile = z.record(targetName, TargetEntry, {
  error: (iss) => (iss.code === 'invalid_key' ? targetName.safeParse(iss.input).error?.issues[0]?.message : 'an object of target names to { url, secret | secretFile }'),
});
export type TargetsFile = z.infer<typeof TargetsFile>;

/** The targets file's text, checked; `where` (the file's name or its variable) starts every error line. */
export function parseTargetsFile(text: string, where: string): TargetsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // Only the position: newer V8 messages quote the text around it, which may be a secret.
    const at = /position \d+(?: \(line \d+ column \d+\))?/.exec((err as Error).message)?.[0];
    throw new InputError(`${where}: not JSON${at ? ` (at ${at})` : ''}`);
  }
  const r = TargetsFile.safeParse(raw);
  if (!r.success) throw new InputError(formatZodError(r.error).split('\n').map((line) => `${where}: ${line.replace(/^\(input\): /, '')}`).join('\n'));
  return r.data;
}
