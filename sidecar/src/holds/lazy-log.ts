import type { Logger } from '../log.js';

// A held connection's logger, with its own fields (connection id, route), made only when a line
// is written at an enabled level. A pino child is a logger object plus its fields rendered as
// JSON text, about 0.5 KB; every held WebSocket made one at start, and with the usual levels
// most never log a line.

type Level = 'debug' | 'info' | 'warn' | 'error';

/** What a hold writes to its log. */
export interface HoldLog {
  debug(fieldsOrMessage: object | string, message?: string): void;
  info(fieldsOrMessage: object | string, message?: string): void;
  warn(fieldsOrMessage: object | string, message?: string): void;
  error(fieldsOrMessage: object | string, message?: string): void;
}

export class LazyChildLog implements HoldLog {
  private child: Logger | undefined;

  /** The child's fields are { connId, holdKind, route: url's path }, as the holds' children had. */
  constructor(private readonly parent: Logger, private readonly holdKind: string, private readonly connId: string, private readonly url: URL) {}

  debug(fieldsOrMessage: object | string, message?: string): void {
    this.write('debug', fieldsOrMessage, message);
  }

  info(fieldsOrMessage: object | string, message?: string): void {
    this.write('info', fieldsOrMessage, message);
  }

  warn(fieldsOrMessage: object | string, message?: string): void {
    this.write('warn', fieldsOrMessage, message);
  }

  error(fieldsOrMessage: object | string, message?: string): void {
    this.write('error', fieldsOrMessage, message);
  }

  private write(level: Level, fieldsOrMessage: object | string, message: string | undefined): void {
    if (!this.parent.isLevelEnabled(level)) return;
    const child = (this.child ??= this.parent.child({ connId: this.connId, holdKind: this.holdKind, route: this.url.pathname }));
    if (typeof fieldsOrMessage === 'string') child[level](fieldsOrMessage);
    else child[level](fieldsOrMessage, message);
  }
}
