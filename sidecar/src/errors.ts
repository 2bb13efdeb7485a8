// Every failure the sidecar reports, listed once. A KgError carries a stable code (for logs and
// metrics), the HTTP status a client or publisher sees, and a message naming the bad input.
// Nothing decides anything by matching message text: branch on `code`.

export const ErrorCodes = {
  KG_ERR_CONFIG_INVALID: { status: 0, summary: 'configuration is invalid; the process does not start' },
  KG_ERR_LISTEN_FAILED: { status: 0, summary: 'a port could not be bound (in use, not permitted, no such address); the process does not start' },
  KG_ERR_INSTRUCT_INVALID: { status: 502, summary: 'the origin answered with GRIP instructions that do not parse' },
  KG_ERR_INSTRUCT_TOO_LARGE: { status: 502, summary: 'a GRIP response body from the origin exceeded the buffered limit' },
  KG_ERR_REQUEST_TOO_LARGE: { status: 400, summary: 'the client body was too large to keep for a GRIP hold' },
  KG_ERR_ORIGIN_UNREACHABLE: { status: 502, summary: 'the origin could not be reached or failed mid-response' },
  KG_ERR_LINK_REFUSED: { status: 0, summary: 'a Grip-Link rel=next names a URL the outbound policy refuses (another origin, the sidecar itself); the stream ends' },
  KG_ERR_ORIGIN_TIMEOUT: { status: 504, summary: 'the origin did not answer in time' },
  KG_ERR_PUBLISH_INVALID: { status: 400, summary: 'a publish body or item is malformed' },
  KG_ERR_PUBLISH_UNAUTHORIZED: { status: 401, summary: 'a publish lacked valid credentials' },
  KG_ERR_HANDOFF_INVALID: { status: 401, summary: 'a request lacked a valid Kong handoff token' },
  KG_ERR_HANDOFF_CAPACITY: { status: 503, summary: 'the handoff replay cache is full; the request is refused rather than accepted unchecked' },
  KG_ERR_HANDOFF_STORE: { status: 503, summary: 'the fleet-wide nonce store (NATS JetStream KV) does not answer; handed-off requests are refused rather than accepted unchecked' },
  KG_ERR_QUOTA_EXCEEDED: { status: 429, summary: 'Kong mode: the consumer already holds max_connections_per_consumer connections across the fleet' },
  KG_ERR_WS_RATE_LIMITED: { status: 0, summary: 'a WebSocket client sent more messages than ws_messages_per_second / ws_burst allow; closed with 1008' },
  KG_ERR_TOO_MANY_CONNECTIONS: { status: 503, summary: 'the connection limit is reached' },
  KG_ERR_NATS_PAYLOAD_INVALID: { status: 0, summary: 'a NATS message was not a valid publish item' },
  KG_ERR_BUS_UNAVAILABLE: { status: 503, summary: 'the bus (NATS) is not connected, so a publish cannot be accepted' },
  KG_ERR_WS_EVENTS_INVALID: { status: 502, summary: 'a WebSocket-over-HTTP body from the origin is not valid websocket-events' },
  KG_ERR_HISTORY_UNAVAILABLE: { status: 0, summary: 'the JetStream history stream could not be set up or read; delivery falls back to the origin' },
  KG_ERR_SHUTTING_DOWN: { status: 503, summary: 'the sidecar is draining after SIGTERM and takes no new requests or publishes' },
  KG_ERR_PATH_INVALID: { status: 400, summary: 'the request path leads outside the origin\'s base path (dot segments)' },
  KG_ERR_WS_CONTROL_INVALID: { status: 0, summary: 'a WebSocket control message (c:) from the origin is malformed; it is ignored' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class KgError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KgError';
    this.code = code;
    this.status = ErrorCodes[code].status;
  }
}

export function isKgError(err: unknown, code?: ErrorCode): err is KgError {
  return err instanceof KgError && (code === undefined || err.code === code);
}
