import jsonPatch from 'fast-json-patch';
import { KgError } from '../errors.js';
import { isGripHeader, overlayHeaders, withoutHeaders } from './headers.js';
import { isMoveIntoItself, reasonPhrase } from './publish-item.js';
import type { HeaderList, HttpResponseFormat, JsonPatchOperation } from './types.js';

// The response a long-poll client gets when an http-response item is published (docs/grip.md, "Long-polling (response hold)"):
// the timeout response's headers overlaid by the item's, and the item's body (or the timeout
// body with the item's JSON Patch applied).

/** Default bound on a body-patch result, in bytes of serialized JSON (1 MiB). */
export const DEFAULT_MAX_PATCHED_BODY_BYTES = 1_048_576;

export interface ResponseParts {
  code: number;
  reason: string;
  headers: HeaderList;
  body: Buffer;
}

export interface PublishedResponseOptions {
  /** Bound on the serialized body a body-patch may produce; default DEFAULT_MAX_PATCHED_BODY_BYTES. */
  maxPatchedBodyBytes?: number;
}

export interface PublishedResponse extends ResponseParts {
  /**
   * Why the item's body-patch was not applied (KG_ERR_PUBLISH_INVALID); the body is then empty,
   * as Pushpin sends it when a patch fails. For the caller to log and count.
   */
  patchError?: KgError;
}

export function buildPublishedResponse(
  timeoutResponse: ResponseParts, format: HttpResponseFormat, options: PublishedResponseOptions = {},
): PublishedResponse {
  const itemHeaders = format.headers.filter(([name]) => !isGripHeader(name));
  const headers = withoutHeaders(overlayHeaders(timeoutResponse.headers, itemHeaders), ['content-length', 'transfer-encoding']);
  const out: PublishedResponse = { code: format.code, reason: format.reason ?? reasonPhrase(format.code), headers, body: EMPTY };
  if (format.body !== undefined) {
    out.body = format.body;
  } else if (format.bodyPatch !== undefined) {
    const patched = patchJsonBody(timeoutResponse.body, format.bodyPatch, options.maxPatchedBodyBytes);
    out.body = patched.body;
    if (patched.error !== undefined) out.patchError = patched.error;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

export interface PatchResult {
  body: Buffer;
  /** Set when the patch was not applied; body is then empty. */
  error?: KgError;
}

const notApplied = (problem: string): PatchResult =>
  ({ body: EMPTY, error: new KgError('KG_ERR_PUBLISH_INVALID', `body-patch not applied: ${problem}`) });

/** UTF-8 length of a value's compact JSON text. */
const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v) ?? '');

/** Upper bound on the bytes a new object member named by the last token of `path` adds: `,"name":`. */
function memberBytes(path: string): number {
  return jsonBytes(path.slice(path.lastIndexOf('/') + 1)) + 2;
}

/**
 * Applies an RFC 6902 patch to a JSON body, keeping its trailing newline. As in Pushpin, a body
 * that is not JSON or a patch that fails yields an empty body; `error` says why.
 *
 * The result is bounded by `maxBytes` while the operations apply: each one adds what it inserts
 * (its value, or the copied subtree) to a running size, and the patch stops before an operation
 * that would take it over the limit. Removals are not credited back, so the size is an upper
 * bound and the work done (copies, measuring) stays within about `maxBytes` too: a run of copies
 * that doubles the document stops after a few steps instead of building gigabytes.
 */
export function patchJsonBody(body: Buffer, patch: readonly JsonPatchOperation[], maxBytes = DEFAULT_MAX_PATCHED_BODY_BYTES): PatchResult {
  const text = body.toString('utf8');
  const trailer = text.endsWith('\r\n') ? '\r\n' : text.endsWith('\n') ? '\n' : '';
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return notApplied('the held response body is not JSON');
  }
  const over = (where: string): PatchResult => notApplied(`the result would exceed ${maxBytes} bytes (maxPatchedBodyBytes) ${where}`);
  try {
    let size = jsonBytes(doc);
    if (size > maxBytes) return over('before operation 0');
    for (const [i, op] of patch.entries()) {
      size += growth(doc, op);
      if (size > maxBytes) return over(`at operation ${i} (${op.op} ${op.path})`);
      // Checked when published too; here as well, since a patch may come from elsewhere.
      if (op.op === 'move' && isMoveIntoItself(op.from, op.path)) return notApplied(`operation ${i} (move ${op.path}) moves a value into itself`);
      // Values are cloned: the item's operations are shared by every subscriber and must not
      // become part of (and be changed with) one subscriber's document.
      const own = 'value' in op ? { ...op, value: structuredClone(op.value) } : op;
      try {
        doc = jsonPatch.applyOperation(doc, own as jsonPatch.Operation, true, true, true, i).newDocument;
      } catch (err) {
        return notApplied(`operation ${i} (${op.op} ${op.path}) failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    const out = JSON.stringify(doc) + trailer;
    if (Buffer.byteLength(out) > maxBytes + trailer.length) return over('after the last operation');
    return { body: Buffer.from(out, 'utf8') };
  } catch (err) {
    // JSON.stringify or structuredClone on a document nested beyond the stack, or one that the
    // patch library left circular: that subscriber gets the empty body, fan-out goes on.
    return notApplied(`the patched document cannot be serialised (${(err as Error).message.split('\n')[0]})`);
  }
}

/** What an operation can add to the serialized document, at most. */
function growth(doc: unknown, op: JsonPatchOperation): number {
  switch (op.op) {
    case 'add':
    case 'replace':
      return jsonBytes(op.value) + memberBytes(op.path);
    case 'copy': {
      let source: unknown;
      try {
        source = jsonPatch.getValueByPointer(doc, op.from);
      } catch {
        return 0; // the operation itself will fail with the library's message
      }
      return jsonBytes(source) + memberBytes(op.path);
    }
    case 'move':
      return memberBytes(op.path);
    case 'remove':
    case 'test':
      return 0;
    default: {
      const never: never = op;
      throw new Error(`unhandled patch operation ${JSON.stringify(never)}`);
    }
  }
}
