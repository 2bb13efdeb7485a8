import jsonPatch from 'fast-json-patch';
import { isGripHeader, overlayHeaders, withoutHeaders } from './headers.js';
import { reasonPhrase } from './publish-item.js';
import type { HeaderList, HttpResponseFormat } from './types.js';

// The response a long-poll client gets when an http-response item is published (spec 3.5):
// the timeout response's headers overlaid by the item's, and the item's body (or the timeout
// body with the item's JSON Patch applied).

export interface ResponseParts {
  code: number;
  reason: string;
  headers: HeaderList;
  body: Buffer;
}

export function buildPublishedResponse(timeoutResponse: ResponseParts, format: HttpResponseFormat): ResponseParts {
  const itemHeaders = format.headers.filter(([name]) => !isGripHeader(name));
  const headers = withoutHeaders(overlayHeaders(timeoutResponse.headers, itemHeaders), ['content-length', 'transfer-encoding']);
  let body: Buffer;
  if (format.body !== undefined) body = format.body;
  else if (format.bodyPatch !== undefined) body = patchJsonBody(timeoutResponse.body, format.bodyPatch);
  else body = Buffer.alloc(0);
  return { code: format.code, reason: format.reason ?? reasonPhrase(format.code), headers, body };
}

/**
 * Applies an RFC 6902 patch to a JSON body, keeping its trailing newline. As in Pushpin, a body
 * that is not JSON or a patch that fails yields an empty body.
 */
export function patchJsonBody(body: Buffer, patch: unknown[]): Buffer {
  const text = body.toString('utf8');
  const trailer = text.endsWith('\r\n') ? '\r\n' : text.endsWith('\n') ? '\n' : '';
  try {
    const doc: unknown = JSON.parse(text);
    const result = jsonPatch.applyPatch(doc, patch as jsonPatch.Operation[], true, false);
    return Buffer.from(JSON.stringify(result.newDocument) + trailer, 'utf8');
  } catch {
    return Buffer.alloc(0);
  }
}
