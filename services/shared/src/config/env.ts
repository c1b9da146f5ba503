import { readFileSync } from 'node:fs';

/**
 * Reads environment variables for the configuration loader and collects every problem instead
 * of stopping at the first, so that one start-up message can name all of them.
 *
 * Any variable NAME may instead be given as NAME_FILE, the path of a file holding the value (the
 * Kubernetes Secret volume convention); one trailing newline is dropped.
 */
export class EnvReader {
  readonly problems: string[] = [];
  private readonly sources = new Map<string, 'env' | 'file'>();
  private readonly values = new Map<string, string | undefined>();
  /** Names that already have a problem, so that one mistake is reported once. */
  private readonly faulty = new Set<string>();

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** The raw value, or undefined when neither NAME nor NAME_FILE is set (or both are empty). */
  raw(name: string): string | undefined {
    if (!this.values.has(name)) this.values.set(name, this.read(name));
    return this.values.get(name);
  }

  /** Records a problem with a variable (once per variable). */
  report(name: string, problem: string): void {
    if (this.faulty.has(name)) return;
    this.faulty.add(name);
    this.problems.push(problem);
  }

  private read(name: string): string | undefined {
    const direct = this.env[name];
    const file = this.env[`${name}_FILE`];
    if (file !== undefined && file !== '') {
      if (direct !== undefined && direct !== '') {
        this.report(name, `${name} and ${name}_FILE are both set; set only one`);
        return undefined;
      }
      try {
        const value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        // An empty file (a Secret key with no value) gives nothing, like an empty variable would;
        // said here, since the variable is otherwise set and nothing else would name it.
        if (value === '') {
          this.report(name, `${name}_FILE names ${file}, which is empty`);
          return undefined;
        }
        this.sources.set(name, 'file');
        return value;
      } catch (err) {
        const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
        this.report(name, `${name}_FILE names ${file}, which cannot be read (${reason})`);
        return undefined;
      }
    }
    if (direct === undefined || direct === '') return undefined;
    this.sources.set(name, 'env');
    return direct;
  }

  has(name: string): boolean {
    const direct = this.env[name];
    const file = this.env[`${name}_FILE`];
    return (direct !== undefined && direct !== '') || (file !== undefined && file !== '');
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }

  required(name: string, hint = ''): string | undefined {
    const value = this.raw(name);
    if (value === undefined) this.report(name, `${name} is missing${hint}`);
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
      this.report(name, `${name} must be a whole number from ${min} to ${max}, got "${value}"`);
      return fallback;
    }
    return Number(value);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.report(name, `${name} must be one of ${allowed.join(', ')}, got "${value}"`);
      return fallback;
    }
    return value as T;
  }

  url(name: string, protocols: readonly string[]): URL | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const url = new URL(value);
      if (!protocols.includes(url.protocol)) throw new Error('protocol');
      return url;
    } catch {
      this.report(name, `${name} must be a ${protocols.join(' or ')}// URL`);
      return undefined;
    }
  }

  /** Whether NAME came from the environment or from NAME_FILE (for start-up logs). */
  sourceOf(name: string): 'env' | 'file' | undefined {
    return this.sources.get(name);
  }
}
