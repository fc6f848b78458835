// TEMPORARY (not committed): replaced by the brownian branch's version.
import { callNative } from './errors';
import { native } from './native';
import type { Tensor } from './tensor';
export class BrownianInterval {
  handle: any;
  constructor(o: { t0?: number; t1?: number; shape: number[]; seed?: number; dtype?: string; levyArea?: boolean; dtHint?: number }) {
    const C = (native() as any).BrownianInterval;
    this.handle = callNative(() => new C(o));
  }
  increment(s: number, t: number): Tensor { return callNative(() => this.handle.increment(s, t)); }
}
export function brownianHandle(bm: unknown, field: string): unknown {
  if (!(bm instanceof BrownianInterval)) throw new TypeError(`Expected a BrownianInterval for ${field}`);
  return bm.handle;
}
