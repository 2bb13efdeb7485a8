import type { HostPort } from './config.js';
import { OPTIONS } from './config.js';
import { KgError } from './errors.js';

// A listener that cannot be bound stops start-up. Its error names the address, the cause in
// words, and every way to choose another address, so the fix is in the message.

export type ListenerName = 'listen' | 'control';

const WHAT: Record<ListenerName, string> = {
  listen: 'the client port',
  control: 'the control port (publish API, /metrics, /healthz, /readyz)',
};

const CAUSES: Record<string, string> = {
  EADDRINUSE: 'another process already listens there',
  EACCES: 'not permitted (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the host is not an address of this machine',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve (DNS lookup failed)',
};

export function listenFailure(listener: ListenerName, at: HostPort, err: unknown): KgError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const known = code === undefined ? undefined : CAUSES[code];
  const cause = known === undefined ? (err instanceof Error ? err.message : String(err)) : `${known} (${code})`;
  const option = OPTIONS.find((o) => o.key === listener);
  const how = option === undefined ? '' : `; choose another with ${option.flag} ${option.arg}, the environment variable ${option.env} or "${option.key}:" in the --config file`;
  const host = at.host.includes(':') ? `[${at.host}]` : at.host;
  return new KgError('KG_ERR_LISTEN_FAILED', `cannot listen on ${host}:${at.port} for ${WHAT[listener]}: ${cause}${how}`, { cause: err });
}
