/**
 * How long a request has been on its way, learnt without trusting clocks.
 *
 * A request carries when it was sent (`Callback-Sent`), by its sender's
 * monotonic clock. The sender's and the responder's clocks differ by an
 * unknown but steady offset, so `received - sent` is the time on the way plus
 * that offset. The smallest such difference seen from one sender holds the
 * offset plus that sender's fastest trip: subtracting it from a request's
 * difference gives how much longer than the fastest trip this request took. That is a
 * lower bound of its time on the way, whatever the two clocks say — so a
 * responder that spends it from the caller's budget never gives up on a caller
 * that still waits. It catches what matters: a request held up in a stalled
 * broker or a slow network arrives with its delay measured. The first request
 * from a sender, and a sender whose every request is slow, learn nothing.
 *
 * Offsets are remembered per sender (its reply inbox) for one to two minutes,
 * so that a slow drift between two clocks cannot build up.
 *
 * @module
 */

/** Remembered senders' offsets, per generation. */
const MAX_SENDERS = 10_000;

/** The fastest trips seen from each sender, in two generations of a minute. */
export class TransitClock {
  readonly #now: () => number;
  readonly #window: number;
  #current = new Map<string, number>();
  #previous = new Map<string, number>();
  #since: number;

  /**
   * @param now The responder's monotonic clock, in milliseconds (`performance.now()` by default).
   * @param window How long a generation of offsets lasts, in milliseconds.
   */
  constructor(
    now: () => number = () => performance.timeOrigin + performance.now(),
    window = 60_000,
  ) {
    this.#now = now;
    this.#window = window;
    this.#since = now();
  }

  /**
   * A lower bound, in milliseconds, of how long a request from `sender`, sent
   * at `sent` by the sender's clock, has been on its way; 0 when nothing is known.
   */
  age(sender: string, sent: number): number {
    const now = this.#now();
    const elapsed = now - this.#since;
    if (elapsed > this.#window || this.#current.size >= MAX_SENDERS) {
      this.#previous = elapsed > 2 * this.#window ? new Map() : this.#current;
      this.#current = new Map();
      this.#since = now;
    }
    const offset = now - sent;
    const current = this.#current.get(sender);
    if (current === undefined || offset < current) this.#current.set(sender, offset);
    const fastest = Math.min(offset, current ?? Infinity, this.#previous.get(sender) ?? Infinity);
    return offset - fastest;
  }
}
