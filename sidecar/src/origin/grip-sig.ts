import { SignJWT } from 'jose';

// Grip-Sig (docs/grip.md, "Requests to the origin"): an HS256 JWT with exactly {iss, exp = now + 3600}. Every request in the
// same second would get byte-identical tokens, so one is minted per second and reused.

const LIFETIME_SEC = 3600;

/** `base64:<data>` is a binary secret; anything else is used as the literal key bytes. */
export function decodeSigKey(key: string): Uint8Array {
  return key.startsWith('base64:') ? Buffer.from(key.slice(7), 'base64') : Buffer.from(key, 'utf8');
}

export class GripSigner {
  private readonly key: Uint8Array;
  private cachedSecond = -1;
  private cached: Promise<string> = Promise.resolve('');

  constructor(key: string, private readonly issuer: string, private readonly nowMs: () => number = Date.now) {
    this.key = decodeSigKey(key);
  }

  token(): Promise<string> {
    const second = Math.floor(this.nowMs() / 1000);
    if (second !== this.cachedSecond) {
      this.cachedSecond = second;
      this.cached = new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuer(this.issuer)
        .setExpirationTime(second + LIFETIME_SEC)
        .sign(this.key);
    }
    return this.cached;
  }
}
