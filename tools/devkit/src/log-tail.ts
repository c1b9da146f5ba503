/** Keeps the last lines a child process printed, to show them when it fails. */
export class LogTail {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly max = 40) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  text(): string {
    return [...this.lines, this.partial].filter((line) => line.length > 0).join('\n');
  }
}
