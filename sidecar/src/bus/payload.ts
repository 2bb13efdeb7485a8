import { KgError, isKgError } from '../errors.js';
import { encodePublishItem, parsePublishItem } from '../grip/publish-item.js';
import type { PublishItem } from '../grip/types.js';

// An item on NATS: the publish-item JSON (docs/grip.md, "Publishing") in strict UTF-8, on its channel's subject.
// Live delivery and history reads both judge a message here, so an item is valid or invalid
// the same way whichever path brought it. Pure: no connection, no logging.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes published for one item (the subject names the channel, so it is left out). */
export function encodeNatsPayload(item: PublishItem): Buffer {
  return Buffer.from(JSON.stringify(encodePublishItem(item, false)), 'utf8');
}

/**
 * The item a message on `channel`'s subject carries, or a KG_ERR_NATS_PAYLOAD_INVALID error
 * naming the subject and the problem. Returned rather than thrown: callers drop and count bad
 * messages, and the common case costs no exception.
 */
export function parseNatsPayload(subject: string, channel: string, data: Uint8Array): PublishItem | KgError {
  try {
    return parsePublishItem(JSON.parse(strictUtf8.decode(data)), 'payload', { channel });
  } catch (cause) {
    // parsePublishItem names the bad field; anything else came from the decoder or JSON.parse.
    const detail = isKgError(cause) ? cause.message : `payload is not UTF-8 JSON: ${messageOf(cause)}`;
    return invalidPayload(subject, detail, cause);
  }
}

/** The error for a message on `subject` that is not a valid item (also for bad JetStream headers). */
export function invalidPayload(subject: string, detail: string, cause?: unknown): KgError {
  return new KgError('KG_ERR_NATS_PAYLOAD_INVALID', `NATS message on ${subject}: ${detail}`, { cause });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
