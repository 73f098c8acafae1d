/**
 * Progress on stderr while the bench runs (stdout carries only the table). On a terminal one
 * line is redrawn in place; otherwise (CI logs, redirected) each run gets its own line.
 */
const fmtTime = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
};

export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly total: number) {}

  /** Announces a run about to start. */
  begin(label: string): void {
    const elapsed = Date.now() - this.started;
    const eta = this.done > 0 ? (elapsed / this.done) * (this.total - this.done) : undefined;
    const width = String(this.total).length;
    const line =
      `[${String(this.done + 1).padStart(width)}/${this.total}] ${label}` +
      `  ${fmtTime(elapsed)} elapsed${eta === undefined ? '' : `, ~${fmtTime(eta)} left`}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  /** Finishes the current run; `note` (a failure, a figure) is kept on its own line. */
  end(note?: string): void {
    this.done++;
    if (note) process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}  ${note}\n`);
  }

  finish(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`bench: ${this.total} runs in ${fmtTime(Date.now() - this.started)}\n`);
  }
}
