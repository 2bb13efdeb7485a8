// What the NATS bus's layers share for logging: error text, server URLs without credentials, and
// a bound on how often one kind of event is logged.

/** An error's message for logs and statuses (nats.js errors sometimes carry only a code). */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || ('code' in err ? String(err.code) : err.name);
  return String(err);
}

/** Server URLs without user info, for logs. */
export function redact(servers: readonly string[]): string[] {
  return servers.map((s) => s.replace(/\/\/[^@/]*@/, '//'));
}

/**
 * At most `maxPerWindow` log lines per window for one kind of event, so a broken publisher
 * cannot flood the logs; each line let through says how many were held back before it.
 */
export class LogThrottle {
  private windowStart = 0;
  private loggedInWindow = 0;
  private suppressed = 0;

  constructor(private readonly windowMs: number, private readonly maxPerWindow: number) {}

  /**
   * Whether to log an event that happens at `nowMs`: undefined to stay quiet, else the number of
   * events suppressed since the last line that was logged.
   */
  admit(nowMs: number): number | undefined {
    if (nowMs - this.windowStart >= this.windowMs) {
      this.windowStart = nowMs;
      this.loggedInWindow = 0;
    }
    if (this.loggedInWindow >= this.maxPerWindow) {
      this.suppressed++;
      return undefined;
    }
    this.loggedInWindow++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return suppressed;
  }
}
