// Stream keep-alives on one shared timer, as in Pushpin's buckets (STYLE 10): a Node timer per
// connection costs over a hundred bytes plus a closure, and re-arming it on every write costs
// CPU on the delivery path. Time is counted in ticks of `resolutionMs`; each member sits in the
// slot of the tick when its keep-alive may next be due. A write only records the current tick on
// the member; when a slot comes round, each member in it either sends (it was quiet long enough)
// or moves to the slot of its real due tick.
//
// A keep-alive goes out between timeout and about timeout + 3 × resolutionMs after the last write
// that restarts it, never earlier, and the timer runs only while some stream has keep-alives.
//
// WebSocket sessions are members too: a session for its client keep-alive (the keep-alive control
// message) and its origin link for the origin's Keep-Alive-Interval (holds/ws-*.ts).

export interface KeepAliveMember {
  /** Tick of the last write that restarts the wait (idle mode), or of the last keep-alive. */
  keepAliveMark: number;
  /** The wait in ticks; set by the wheel. */
  keepAliveTicks: number;
  /** The slot the member sits in; -1 when not on the wheel. Set by the wheel. */
  keepAliveSlot: number;
  /** Writes the keep-alive (may close the member, which then leaves the wheel). */
  sendKeepAlive(): void;
}

export const DEFAULT_KEEP_ALIVE_RESOLUTION_MS = 250;

export class KeepAliveWheel {
  private readonly slots = new Map<number, Set<KeepAliveMember>>();
  private members = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt: number;
  /** The last tick processed. */
  private tick = 0;

  constructor(
    private readonly resolutionMs: number = DEFAULT_KEEP_ALIVE_RESOLUTION_MS,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.startedAt = nowMs();
  }

  /** The tick now, for KeepAliveMember.keepAliveMark. */
  currentTick(): number {
    return Math.floor((this.nowMs() - this.startedAt) / this.resolutionMs);
  }

  /** Starts keep-alives every `intervalMs` for `member`, counted from now. */
  add(member: KeepAliveMember, intervalMs: number): void {
    if (member.keepAliveSlot >= 0) this.remove(member);
    const now = this.currentTick();
    // While nothing was on the wheel its ticks were not processed; there is nothing to catch up.
    if (this.members === 0) this.tick = now;
    member.keepAliveTicks = Math.max(1, Math.ceil(intervalMs / this.resolutionMs));
    member.keepAliveMark = now;
    this.place(member, now + member.keepAliveTicks + 1);
    if (this.members++ === 0) {
      this.timer = setInterval(this.advance, this.resolutionMs);
      this.timer.unref();
    }
  }

  remove(member: KeepAliveMember): void {
    if (member.keepAliveSlot < 0) return;
    const slot = this.slots.get(member.keepAliveSlot);
    if (slot !== undefined && slot.delete(member) && slot.size === 0) this.slots.delete(member.keepAliveSlot);
    member.keepAliveSlot = -1;
    if (--this.members === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const slot of this.slots.values()) for (const m of slot) m.keepAliveSlot = -1;
    this.slots.clear();
    this.members = 0;
  }

  private place(member: KeepAliveMember, tick: number): void {
    member.keepAliveSlot = tick;
    let slot = this.slots.get(tick);
    if (slot === undefined) {
      slot = new Set();
      this.slots.set(tick, slot);
    }
    slot.add(member);
  }

  /** Processes every tick up to now (a late timer catches up, in order). */
  readonly advance = (): void => {
    const target = this.currentTick();
    while (this.tick < target) {
      this.tick++;
      const slot = this.slots.get(this.tick);
      if (slot === undefined) continue;
      this.slots.delete(this.tick);
      for (const m of slot) {
        if (m.keepAliveSlot !== this.tick) continue; // left or moved meanwhile
        const due = m.keepAliveMark + m.keepAliveTicks + 1;
        if (due > this.tick) {
          this.place(m, due);
          continue;
        }
        // Counted from now: a late timer sends once, not once per interval it missed.
        m.keepAliveMark = target;
        this.place(m, target + m.keepAliveTicks + 1);
        m.sendKeepAlive();
      }
    }
  };
}
