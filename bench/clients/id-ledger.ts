// What one storm client received, by id: from the first id it got, which ids of its channel it
// missed and which it got more than once. Ids are positive integers, sequential per channel
// (wire/storm-ids.ts); a bitmap from the first id keeps it to a bit per id. Pure: no I/O.

export interface IdTally {
  /** Ids from the first one received up to the channel's last that never arrived. */
  lost: number;
  /** Arrivals of an id already received. */
  duplicated: number;
}

export class IdLedger {
  /** First id received (undefined: none yet). */
  firstId: number | undefined;
  /** Highest id received (0: none yet). */
  highest = 0;
  duplicated = 0;
  /** Ids before the first one, arriving late (counted as received, not as lost). */
  private early = new Set<number>();
  private bits = new Uint8Array(16);

  /** Records an arrival; returns false when the id had arrived before. */
  record(id: number): boolean {
    if (this.firstId === undefined) this.firstId = id;
    if (id < this.firstId) {
      if (this.early.has(id)) {
        this.duplicated++;
        return false;
      }
      this.early.add(id);
      return true;
    }
    const off = id - this.firstId;
    const byte = off >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (off & 7);
    if ((this.bits[byte]! & mask) !== 0) {
      this.duplicated++;
      return false;
    }
    this.bits[byte]! |= mask;
    if (id > this.highest) this.highest = id;
    return true;
  }

  has(id: number): boolean {
    if (this.firstId === undefined) return false;
    if (id < this.firstId) return this.early.has(id);
    const off = id - this.firstId;
    const byte = off >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (off & 7))) !== 0;
  }

  /** Loss and duplicates against the channel's last id (`lastId`). */
  tally(lastId: number): IdTally {
    if (this.firstId === undefined) return { lost: 0, duplicated: this.duplicated };
    let lost = 0;
    for (let id = this.firstId; id <= lastId; id++) if (!this.has(id)) lost++;
    return { lost, duplicated: this.duplicated };
  }
}
