import { KgError } from '../../sidecar/src/errors.js';
import { parseInstruct } from '../../sidecar/src/grip/instruct.js';
import type { HeaderList, Instruct } from '../../sidecar/src/grip/types.js';

export const REQUEST_URL = 'http://origin.test/feed/stream?x=1';

export interface ResponseParts {
  code?: number;
  reason?: string;
  body?: Buffer | string;
}

/** parseInstruct over a 200 OK origin response with these headers, requested at REQUEST_URL. */
export function parse(headers: HeaderList, parts: ResponseParts = {}): Instruct {
  const body = typeof parts.body === 'string' ? Buffer.from(parts.body) : parts.body;
  return parseInstruct(
    { code: parts.code ?? 200, reason: parts.reason ?? 'OK', headers, ...(body === undefined ? {} : { body }) },
    { requestUrl: REQUEST_URL },
  );
}

/** A JSON instruct response (Content-Type application/grip-instruct) with extra headers. */
export function parseJson(doc: unknown, headers: HeaderList = [], parts: ResponseParts = {}): Instruct {
  return parse([['Content-Type', 'application/grip-instruct'], ...headers], {
    ...parts, body: parts.body ?? JSON.stringify(doc),
  });
}

/** The message of the KG_ERR_INSTRUCT_INVALID that fn throws; fails on anything else. */
export function instructError(fn: () => unknown): string {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof KgError) || err.code !== 'KG_ERR_INSTRUCT_INVALID' || err.status !== 502) {
    throw new Error(`expected KG_ERR_INSTRUCT_INVALID (502), got ${String(err)}`);
  }
  return err.message;
}
