/**
 * The commands' flags: declared once (placeholder, help, how the text becomes a value), read with
 * Node's util.parseArgs, checked before any work starts, and printed as the command's --help.
 * A usage error names the flag, what it expects and what it received; the CLI exits 2 on it.
 */
import { parseArgs } from 'node:util';
import type { DeviceSpec } from '../backend';

/** A command line that cannot be run as given: an unknown flag, a missing or malformed value. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** --preset NAME or --dataset NAME (a dataset's own preset), not both: the one given, or undefined. */
export function presetOrDataset<P extends string, D extends string>(preset: P | undefined, dataset: D | undefined): P | D | undefined {
  if (preset !== undefined && dataset !== undefined) {
    throw new UsageError(`Expected one of --preset or --dataset but received both (--preset ${preset} --dataset ${dataset})`);
  }
  return preset ?? dataset;
}

/** Turns a flag's text into its value or throws a UsageError naming `flag`. */
export type Parser<T> = (text: string, flag: string) => T;

/** A flag taking a value (`parse` set) or a switch (no value). */
export interface Flag<T = unknown> {
  /** The value's placeholder in the help: N, X, DIR. */
  meta?: string;
  help: string;
  parse?: Parser<T>;
  /** The default as the help shows it. */
  default?: string;
  /** A heading in the help, from this flag on. */
  group?: string;
}

export type Flags = Record<string, Flag>;

/** The parsed values: each flag's type, or boolean for a switch; absent when not given. */
export type Values<F extends Flags> = { [K in keyof F]?: F[K] extends { parse: Parser<infer T> } ? T : boolean };

export function option<T>(meta: string, parse: Parser<T>, help: string, more: { default?: string; group?: string } = {}): Flag<T> & { parse: Parser<T> } {
  return { meta, parse, help, ...more };
}

export function toggle(help: string, more: { group?: string } = {}): Flag<never> {
  return { help, ...more };
}

function expected(what: string, flag: string, text: string): never {
  throw new UsageError(`Expected ${what} for --${flag} but received '${text}'`);
}

/** A whole number in [min, max]; "a positive integer" for min 1. */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Parser<number> {
  const what = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`;
  return (text, flag) => {
    const n = Number(text);
    if (!/^\s*[+-]?\d+\s*$/.test(text) || n < min || n > max) expected(max < Number.MAX_SAFE_INTEGER ? `an integer in [${min}, ${max}]` : what, flag, text);
    return n;
  };
}

/** A finite number: any, above 0, at least 0, or in [0, 1) ('unit'). */
export function number(kind: 'any' | 'positive' | 'non-negative' | 'unit' = 'any'): Parser<number> {
  const what = { any: 'a number', positive: 'a positive number', 'non-negative': 'a non-negative number', unit: 'a number in [0, 1)' }[kind];
  return (text, flag) => {
    const n = Number(text);
    const ok = text.trim() !== '' && Number.isFinite(n) && (kind === 'any' || (kind === 'positive' ? n > 0 : n >= 0)) && (kind !== 'unit' || n < 1);
    if (!ok) expected(what, flag, text);
    return n;
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): Parser<T> {
  return (text, flag) =>
    choices.includes(text as T)
      ? (text as T)
      : expected(
          choices
            .map((c) => `'${c}'`)
            .join(', ')
            .replace(/, ([^,]*)$/, ' or $1'),
          flag,
          text,
        );
}

/** Comma-separated values, each parsed by `item`. */
export function list<T>(item: Parser<T>, what: string): Parser<T[]> {
  return (text, flag) => {
    const parts = text.split(',');
    try {
      return parts.map((p) => item(p, flag));
    } catch {
      return expected(`comma-separated ${what}`, flag, text);
    }
  };
}

/** Any non-empty text: a path, a host. */
export const text: Parser<string> = (value, flag) => (value === '' ? expected('a non-empty value', flag, value) : value);

export const device: Parser<DeviceSpec> = (value, flag) =>
  /^(cpu|auto|cuda(:\d+)?)$/.test(value) ? (value as DeviceSpec) : expected(`'cpu', 'cuda', 'cuda:N' or 'auto'`, flag, value);

/** Flags several commands share. */
export const common = {
  samples: (fallback: number) => option('S', integer(1), 'Monte Carlo weight paths', { default: String(fallback) }),
  seed: (help: string) => option('N', integer(0, 2 ** 32 - 1), help, { default: '0' }),
  device: option('D', device, 'cpu, cuda, cuda:N or auto', { default: 'cpu' }),
  threads: option('N', integer(1, 1024), 'LibTorch threads', { default: "LibTorch's: OMP_NUM_THREADS or the cores" }),
  quiet: toggle('no progress line on stderr (drawn only on a terminal)'),
};

/** Edit distance up to 2, for "did you mean": the closest flag, if any. */
function closest(name: string, names: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row = next;
    }
    return row[b.length]!;
  };
  const best = names.map((n) => [n, distance(name, n)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
}

/**
 * Parses `args` against `flags`: { help } when --help or -h is anywhere, else the values and up to
 * `positionals` positional arguments. Values that begin with '-' are taken only when they look like
 * numbers (--seed -1, --x -1,2), so that a forgotten value never swallows the next flag.
 */
export function parseFlags<F extends Flags>(
  command: string,
  args: string[],
  flags: F,
  positionals = 0,
): { help: true } | { help: false; values: Values<F>; positionals: string[] } {
  const { tokens } = parseArgs({
    args,
    options: {
      ...Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, { type: f.parse ? ('string' as const) : ('boolean' as const) }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { help: true };
  const values: Record<string, unknown> = {};
  const rest: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (rest.length === positionals) {
        throw new UsageError(
          `Expected ${positionals === 0 ? 'only flags (--name value)' : `at most ${positionals} argument${positionals === 1 ? '' : 's'} before the flags`} for 'sdebnn ${command}' but received '${t.value}'`,
        );
      }
      rest.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue; // '--': what follows is positional
    const flag = Object.hasOwn(flags, t.name) ? flags[t.name]! : undefined;
    if (!flag) {
      const guess = t.rawName.startsWith('--') ? closest(t.name, Object.keys(flags)) : undefined;
      throw new UsageError(`Unknown option ${t.rawName} for 'sdebnn ${command}'${guess ? ` (did you mean --${guess}?)` : ''}`);
    }
    if (!flag.parse) {
      if (t.value !== undefined) throw new UsageError(`Expected no value for the switch --${t.name} but received '${t.value}'`);
      values[t.name] = true;
      continue;
    }
    const what = `a value (${flag.meta ?? 'text'})`;
    if (t.value === undefined) throw new UsageError(`Expected ${what} after --${t.name} but received nothing`);
    if (!t.inlineValue && t.value.startsWith('-') && !/^-[\d.]/.test(t.value)) {
      throw new UsageError(`Expected ${what} after --${t.name} but received the option '${t.value}'`);
    }
    values[t.name] = flag.parse(t.value, t.name);
  }
  return { help: false, values: values as Values<F>, positionals: rest };
}

/** Words of `text` in lines of at most `width` characters, the later ones indented by `indent`. */
function wrap(text: string, indent: number, width = 110): string {
  const lines = [''];
  for (const word of text.split(' ')) {
    const last = lines.length - 1;
    if (lines[last]!.length > 0 && indent + lines[last]!.length + 1 + word.length > width) lines.push(word);
    else lines[last] = lines[last] ? `${lines[last]} ${word}` : word;
  }
  return lines.join(`\n${' '.repeat(indent)}`);
}

/**
 * The help of a command: its usage lines, then a line per flag (under its group's heading) with its
 * default, then `after`. `defaults` overrides a flag's default text (train's presets).
 */
export function formatHelp(usage: string, flags: Flags, options: { defaults?: Record<string, string>; after?: string } = {}): string {
  const lines = [usage];
  const heads = Object.entries(flags).map(([name, f]) => `  --${name}${f.meta ? ` ${f.meta}` : ''}`);
  const width = Math.max(...heads.map((h) => h.length)) + 2;
  Object.values(flags).forEach((f, i) => {
    if (f.group) lines.push('', f.group);
    else if (i === 0) lines.push('');
    const fallback = options.defaults?.[Object.keys(flags)[i]!] ?? f.default;
    lines.push(heads[i]!.padEnd(width) + wrap(`${f.help}${fallback !== undefined ? ` (default ${fallback})` : ''}`, width));
  });
  if (options.after) lines.push('', options.after);
  return lines.join('\n');
}
