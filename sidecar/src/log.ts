import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

/** One structured logger per sidecar; components take children with their own fields. */
export function createLogger(level: Config['logLevel'], destination?: NodeJS.WritableStream): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    // Never log secrets: the handoff token, Grip-Sig, credentials.
    redact: ['req.headers.authorization', 'req.headers["grip-sig"]', 'req.headers["kong-grip-handoff"]'],
  }, destination ?? process.stdout);
}
