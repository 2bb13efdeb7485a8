import type { IncomingMessage } from 'node:http';
import { KgError } from '../errors.js';
import { forwardRequestHeaders } from '../grip/headers.js';
import type { HeaderList } from '../grip/types.js';
import { handoffFailureReason, isHandoffOwnedHeader, type HandoffVerifier, type VerifiedHandoff } from '../kong/handoff-verifier.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { originUrl } from '../origin/origin-url.js';
import { HANDOFF_CAPACITY_TEXT, HANDOFF_REFUSED_TEXT, HANDOFF_STORE_TEXT } from './refusals.js';

// Where a client request goes and with which headers, for plain requests and WebSocket
// upgrades alike: in Kong mode from the grip plugin's signed handoff (origin and caller),
// standalone to the one configured origin. Never an open proxy.

export interface RequestTarget {
  url: URL;
  /** Headers for the origin, already cleaned by the forwarding rules. */
  headers: HeaderList;
}

export interface RequestTargetOptions {
  /** Kong mode; absent when standalone. */
  handoff: HandoffVerifier | undefined;
  /** The standalone origin; absent in Kong mode. */
  origin: URL | undefined;
  metrics: Metrics;
  log: Logger;
}

/**
 * Returns the resolver; it rejects with a KgError whose message is safe to show the client.
 * Asynchronous because Kong mode claims each nonce in the fleet-wide store (after the local checks).
 */
export function createTargetResolver(options: RequestTargetOptions): (req: IncomingMessage) => Promise<RequestTarget> {
  const { handoff, origin, metrics, log } = options;
  // Counted and logged here. The error the client gets carries only a generic text: the
  // client learns nothing about why.
  const refused = (req: IncomingMessage, err: unknown): unknown => {
    const reason = handoffFailureReason(err);
    if (reason === undefined) return err;
    const e = err as KgError;
    metrics.handoffRejected.inc({ reason });
    // An unavailable nonce store is logged once per outage by the store, not per request.
    if (e.code === 'KG_ERR_HANDOFF_STORE') return new KgError(e.code, HANDOFF_STORE_TEXT, { cause: err });
    const isCapacity = e.code === 'KG_ERR_HANDOFF_CAPACITY';
    log[isCapacity ? 'error' : 'warn']({ code: e.code, reason, err: e.message, remote: req.socket.remoteAddress }, 'handoff refused');
    return new KgError(e.code, isCapacity ? HANDOFF_CAPACITY_TEXT : HANDOFF_REFUSED_TEXT, { cause: err });
  };
  return async (req) => {
    // Headers only a verified handoff may set are dropped in both modes, so an origin behind a
    // sidecar can always trust Kong-Grip-* identity headers.
    const headers = forwardRequestHeaders(req.rawHeaders).filter(([name]) => !isHandoffOwnedHeader(name));
    if (handoff !== undefined) {
      let verified: VerifiedHandoff;
      try {
        verified = await handoff.verify(req.headers, Date.now());
      } catch (err) {
        throw refused(req, err);
      }
      return { url: originUrl(verified.origin, req.url), headers: [...headers, ...verified.headersForOrigin] };
    }
    if (origin === undefined) {
      // loadConfig never allows this; fail closed all the same.
      throw new KgError('KG_ERR_HANDOFF_INVALID', 'no origin configured for requests without a Kong handoff');
    }
    return { url: originUrl(origin, req.url), headers };
  };
}
