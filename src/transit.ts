/**
 * How long a request has been on its way, without trusting clocks or peers.
 *
 * A request carries when it was sent (`Callback-Sent`, the sender's
 * `Date.now()`), so `received - sent` is its time on the way plus the
 * difference between the two clocks. Two lower bounds of the time on the way
 * follow, each safe under its own assumption:
 *
 * - **the request alone**: `received - sent - bound` holds while the sender's
 *   clock is behind the responder's by at most `bound` (1 s);
 * - **the sender's history**: the smallest `received - sent` seen from that
 *   sender (its reply inbox) in the last one to two minutes holds the clocks'
 *   difference plus the fastest trip; `received - sent` less that holds while
 *   the difference stays put.
 *
 * The age used is the smaller of the two, so it is overstated only when both
 * assumptions fail at once: a sender whose clock is more than `bound` behind
 * and whose history is false. History can be falsified by anyone who can
 * publish with the sender's reply subject (a stamp from the future lowers its
 * smallest difference), but that alone never makes a timely request look late:
 * the request's own bound still holds. A sender whose clock is minutes off
 * makes the first bound useless, but not the second. A request held up in a
 * stalled broker for more than `bound` arrives with its delay measured; the
 * first request from a sender arrives with nothing known.
 *
 * @module
 */

/** Remembered senders, per generation. */
const MAX_SENDERS = 10_000;

/** The fastest trips seen from each sender, in two generations. */
export class TransitClock {
  readonly #now: () => number;
  readonly #window: number;
  readonly #bound: number;
  #current = new Map<string, number>();
  #previous = new Map<string, number>();
  #since: number;

  /**
   * @param now The responder's clock, in milliseconds since 1970 (`Date.now` by default).
   * @param window How long a generation of remembered trips lasts, in milliseconds.
   * @param bound How far behind the responder's clock a sender's may be, in milliseconds.
   */
  constructor(now: () => number = () => Date.now(), window = 60_000, bound = 1_000) {
    this.#now = now;
    this.#window = window;
    this.#bound = bound;
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
    return Math.max(0, Math.min(offset - this.#bound, offset - fastest));
  }
}
