import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { FailureType, type NotifyInput } from '../src/domain/activities';
import { notifyTargetLabel, targetLabel } from '../src/domain/notify';
import { resolveTarget, type TargetEntry } from '../src/domain/notify-targets';
import { parseTargetsFile } from '../src/schemas/notify-targets.schema';
import type { Logger } from '../src/logger';

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the target's secret (as GitHub signs its webhooks). */
export const SIGNATURE_HEADER = 'x-nixfleet-signature-256';

/** `sha256=<hex>` of `body` under `secret`. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface NotifyDeps {
  logger: Logger;
  /**
   * Where the secrets are read (default: the worker's environment), and the named targets:
   * NIXFLEET_NOTIFY_TARGETS_FILE, NIXFLEET_NOTIFY_<NAME>_URL / _SECRET (src/domain/notify-targets.ts).
   */
  env?: Record<string, string | undefined>;
  /** One attempt's limit for the receiver's answer (default 10 s). */
  requestTimeoutMs?: number;
}

/**
 * Posts a deployment notification: a JSON body (Slack-compatible `text`, and the deployment's facts),
 * signed with HMAC-SHA256 (`X-Nixfleet-Signature-256`), with the notification's id in
 * `X-Nixfleet-Delivery` so a receiver drops a redelivery. A 2xx is delivered; 408, 429 and 5xx and a
 * receiver that cannot be reached are retried by the workflow's policy; any other answer is refused.
 */
export function createNotifyActivities(deps: NotifyDeps): { notify(input: NotifyInput): Promise<void> } {
  const env = deps.env ?? process.env;
  // Read at each delivery: a changed targets file or rotated secret needs no worker restart.
  const entries = (): Record<string, TargetEntry> => {
    const file = env.NIXFLEET_NOTIFY_TARGETS_FILE;
    return file ? parseTargetsFile(readFileSync(file, 'utf8'), 'NIXFLEET_NOTIFY_TARGETS_FILE') : {};
  };
  const resolve = (target: NotifyInput['target']): { url: string; secret: string; label: string } => {
    if ('name' in target) {
      const label = notifyTargetLabel({ target: target.name });
      try {
        return { ...resolveTarget(target.name, entries(), env, (f) => readFileSync(f, 'utf8')), label };
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, FailureType.NotifyMisconfigured);
      }
    }
    // The deprecated form (deployments started before targets had names): the URL came in the input.
    const label = targetLabel(target.url);
    const secret = env[target.secretEnv];
    if (!secret) throw ApplicationFailure.nonRetryable(`the notification secret ${target.secretEnv} is not set in the worker's environment`, FailureType.NotifyMisconfigured);
    return { url: target.url, secret, label };
  };
  return {
    async notify({ deploymentId, target, body }: NotifyInput): Promise<void> {
      const { url, secret, label } = resolve(target);
      if (!/^https?:\/\//.test(url)) throw ApplicationFailure.nonRetryable(`not an http(s) URL: ${label}`, FailureType.NotifyMisconfigured);
      const raw = JSON.stringify(body);
      let cancel: AbortSignal | undefined;
      try {
        cancel = Context.current().cancellationSignal;
      } catch {
        cancel = undefined;
      }
      const signals = [AbortSignal.timeout(deps.requestTimeoutMs ?? 10_000), ...(cancel ? [cancel] : [])];
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(raw, secret), 'x-nixfleet-event': body.event, 'x-nixfleet-delivery': body.id, 'user-agent': 'nixfleet-deployer' },
          body: raw,
          redirect: 'error',
          signal: AbortSignal.any(signals),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        throw ApplicationFailure.retryable(`${label} could not be reached: ${cause ?? (err as Error).message}`, 'NotifyUnreachable');
      }
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) {
        deps.logger.child({ deploymentId, step: 'notify' }).info({ target: label, event: body.event, id: body.id }, 'notification delivered');
        return;
      }
      if (res.status === 408 || res.status === 429 || res.status >= 500) throw ApplicationFailure.retryable(`${label} answered ${res.status}`, 'NotifyFailed');
      throw ApplicationFailure.nonRetryable(`${label} refused the notification: ${res.status}`, FailureType.NotifyRefused);
    },
  };
}
