/**
 * A child process for test helpers (nats-server, workerd): spawned with stdin closed, its
 * stderr collected as a log and its stdout read line by line (or discarded), both drained to
 * EOF, so that awaiting {@linkcode Process.wait} leaves no op or resource for Deno's sanitizers.
 *
 * @module
 */

const MAX_LOG_CHARS = 64 * 1024;

/** Options for {@linkcode Process}. */
export interface ProcessOptions {
  args: string[];
  /** Called with each line written to stdout; without it stdout is discarded. */
  onStdoutLine?: (line: string) => void;
}

/** One spawned process with its pipes drained to EOF. Throws as `Deno.Command.spawn` does. */
export class Process {
  readonly child: Deno.ChildProcess;
  exited = false;
  readonly status: Promise<Deno.CommandStatus>;
  /** Resolves once stdout is read to EOF (at once when it is discarded). */
  readonly stdoutDone: Promise<void>;
  /** Resolves once stdout and stderr are read to EOF. */
  readonly drained: Promise<void>;
  #log = "";

  constructor(bin: string, options: ProcessOptions) {
    const { onStdoutLine } = options;
    const child = new Deno.Command(bin, {
      args: options.args,
      stdin: "null",
      stdout: onStdoutLine ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.status = child.status.then((s) => {
      this.exited = true;
      return s;
    });
    this.stdoutDone = onStdoutLine ? readLines(child.stdout, onStdoutLine) : Promise.resolve();
    // Draining stderr keeps the pipe from filling up, collects text for error messages, and
    // closes the stream resource.
    const stderr = (async () => {
      try {
        for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
          this.#log += chunk;
          if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS);
        }
      } catch {
        // stream errored: nothing more to collect
      }
    })();
    this.drained = Promise.all([this.stdoutDone, stderr]).then(() => {});
  }

  get pid(): number {
    return this.child.pid;
  }

  /** What the process wrote to stderr so far (the last 64 KiB). */
  get log(): string {
    return this.#log;
  }

  /** Sends `sig` unless the process has exited. */
  signal(sig: Deno.Signal): void {
    if (this.exited) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }

  /** Waits for exit and for the pipes to be drained. */
  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.drained;
    return status;
  }

  /** SIGKILL, then {@linkcode Process.wait}. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.wait();
  }

  /** SIGTERM, SIGKILL if still running after `graceMs`, then {@linkcode Process.wait}. */
  async terminate(graceMs: number): Promise<void> {
    if (!this.exited) {
      this.signal("SIGTERM");
      if (await raceTimeout(this.status, graceMs) === "timeout") this.signal("SIGKILL");
    }
    await this.wait();
  }
}

/** `promise`'s value, or `"timeout"` if it is still pending after `ms`; clears its timer. */
export async function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  onLine: (line: string) => void,
) {
  let buffered = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
  } catch {
    // stream errored: nothing more to read
  }
}
