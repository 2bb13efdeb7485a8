import { KvBucket, StoreUnavailable, isWrongRevision, type KvBucketOptions } from './kv-bucket.js';

// Fleet-wide "first one wins" claims on a NATS JetStream key-value bucket (fleet/kv-bucket.ts),
// shared by every process of every sidecar on the same NATS. A claim is one atomic `kv.create`
// (it fails when the key exists), and entries expire with the bucket's TTL. Used for handoff
// nonces (kong/).
//
// The interface is small on purpose:
//   claim(key)  -> 'claimed'   the key was free and is now ours until the TTL ends
//               -> 'taken'     someone (any process) claimed it before
//               throws ClaimsUnavailable when the store cannot answer (not connected, bucket
//               missing, no answer within timeoutMs): the caller decides (Kong mode fails closed)
//   close()

export type ClaimResult = 'claimed' | 'taken';

export interface FleetClaims {
  claim(key: string): Promise<ClaimResult>;
  close(): Promise<void>;
}

/** The store could not answer (the fleet store's StoreUnavailable, under the name callers know). */
export { StoreUnavailable as ClaimsUnavailable };

export type KvClaimsOptions = KvBucketOptions;

/** FleetClaims on a JetStream KV bucket. Connects in the background; claims fail fast until connected. */
export class KvClaims implements FleetClaims {
  private readonly store: KvBucket;

  constructor(options: KvClaimsOptions) {
    this.store = new KvBucket(options);
  }

  claim(key: string): Promise<ClaimResult> {
    return this.store.run(async (kv) => {
      try {
        await kv.create(key, EMPTY);
        return 'claimed';
      } catch (err) {
        if (isWrongRevision(err)) return 'taken';
        throw err;
      }
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

const EMPTY = new Uint8Array(0);
