/**
 * The plasma fractal behind the fog corruption: the diamond-square height map of
 * plasma_fractal() in google-research/mnist-c corruptions.py and hendrycks/robustness
 * make_cifar_c.py (a modification of FLHerne/mapgen diamondsquare.py), on a torus (numpy's
 * np.roll wraps), shifted and scaled to [0, 1] by its minimum and maximum over the whole map,
 * of which the corruption uses only the top-left corner.
 *
 * Speed without changing the distribution: the finest level makes 3/4 of the points, and
 * MNIST-C reads only 28 x 28 of 256 x 256. Every point of that level is the mean of four
 * points within two pixels plus at most 1.5 A (A = wibble^2 of the level: its own draw, plus
 * a quarter of each of the two square centres a diamond averages), so an 8 x 8 tile whose
 * surrounding coarse points stay more than 1.5 A inside the coarse extremes cannot hold the
 * map's minimum or maximum. Only the crop's tiles and the tiles that can are evaluated, each
 * point with a fresh draw, which is the full map's distribution for everything the corruption
 * reads.
 */
import type { Random } from '../random';

/** The side of the tiles the finest level is evaluated in. */
const TILE = 8;

export class PlasmaFractal {
  readonly map: Float64Array;
  private readonly coarseDraws: Uint32Array;
  private readonly fineDraws = new Uint32Array(1024);
  private fineNext = 0;
  /** stamp[p] === generation: point p of the finest level is computed in this map. */
  private readonly stamp: Uint32Array;
  private generation = 0;
  private readonly tiles: number;
  private readonly tileMax: Float64Array;
  private readonly tileMin: Float64Array;
  private readonly rowMax: Float64Array;
  private readonly rowMin: Float64Array;
  /** The map being made: its stream and its finest level's amplitude wibble^2. */
  private rng: Random | null = null;
  private fineAmplitude = 0;
  /** The minimum and maximum of the whole map, kept up to date as points are made. */
  private extremes = { min: 0, max: 0 };

  /** mapSize: the side, a power of two of at least 8 (256 in MNIST-C, 32 in CIFAR-10-C). */
  constructor(readonly mapSize: number) {
    if (!(mapSize >= TILE && (mapSize & (mapSize - 1)) === 0)) throw new RangeError(`Expected a power of two >= ${TILE} for mapSize but received ${mapSize}`);
    this.map = new Float64Array(mapSize * mapSize);
    this.coarseDraws = new Uint32Array((mapSize * mapSize) / 4 - 1);
    this.stamp = new Uint32Array(mapSize * mapSize);
    this.tiles = mapSize / TILE;
    this.tileMax = new Float64Array(this.tiles * this.tiles);
    this.tileMin = new Float64Array(this.tiles * this.tiles);
    this.rowMax = new Float64Array(this.tiles * this.tiles);
    this.rowMin = new Float64Array(this.tiles * this.tiles);
  }

  /**
   * Draws a new fractal and writes its normalised top-left `height` x `width` corner to `out`
   * (row-major). At each step size s (mapSize, mapSize / 2, .., 2) the square centres, then the
   * diamond points, become the mean of their four neighbours plus wibble * U(-wibble, wibble);
   * wibble starts at 100 and is divided by `decay` after each step size.
   */
  generate(rng: Random, decay: number, height: number, width: number, out: Float64Array): void {
    const n = this.mapSize;
    const m = this.map;
    const mask = n - 1; // indices wrap around: n is a power of two
    const draws = rng.fillUint32(this.coarseDraws);
    let d = 0;
    this.fineNext = 0; // fine draws come from this image's stream only
    m[0] = 0;
    let wibble = 100;
    for (let step = n; step >= 4; step >>= 1) {
      const half = step >> 1;
      // Draws are wibble * U(-wibble, wibble): a 32-bit uniform scaled once.
      const scale = (2 * wibble * wibble) / 4294967296;
      const offset = wibble * wibble;
      // Squares: centre = mean of the four corners (corner grid rolled by one step down and right).
      for (let r = 0; r < n; r += step) {
        const r2 = ((r + step) & mask) * n;
        for (let c = 0; c < n; c += step) {
          const c2 = (c + step) & mask;
          const sum = m[r * n + c]! + m[r2 + c]! + m[r * n + c2]! + m[r2 + c2]!;
          m[(r + half) * n + c + half] = sum / 4 + (draws[d++]! * scale - offset);
        }
      }
      // Diamonds on the corner rows: left and right corners, centres above and below.
      for (let r = 0; r < n; r += step) {
        const up = ((r - half) & mask) * n;
        const down = (r + half) * n;
        for (let c = 0; c < n; c += step) {
          const sum = m[r * n + c]! + m[r * n + ((c + step) & mask)]! + m[down + c + half]! + m[up + c + half]!;
          m[r * n + c + half] = sum / 4 + (draws[d++]! * scale - offset);
        }
      }
      // Diamonds on the centre rows: corners above and below, centres left and right.
      for (let r = 0; r < n; r += step) {
        const row = (r + half) * n;
        const below = ((r + step) & mask) * n;
        for (let c = 0; c < n; c += step) {
          const sum = m[r * n + c]! + m[below + c]! + m[row + c + half]! + m[row + ((c - half) & mask)]!;
          m[row + c] = sum / 4 + (draws[d++]! * scale - offset);
        }
      }
      wibble /= decay;
    }
    this.rng = rng;
    this.fineAmplitude = wibble * wibble;
    this.fineLevel(height, width);
    const { min, max } = this.extremes;
    const range = max - min;
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = (m[y * n + x]! - min) / range;
  }

  /** Evaluates the finest level (step 2) where the crop or the map's extremes can be, and sets `extremes`. */
  private fineLevel(height: number, width: number): void {
    const n = this.mapSize;
    const m = this.map;
    const { tiles, tileMax, tileMin } = this;
    this.generation = (this.generation + 1) >>> 0 || 1;
    // Coarse (even, even) points: global and per-tile extremes.
    let max = -Infinity;
    let min = Infinity;
    for (let ty = 0; ty < tiles; ty++) {
      for (let tx = 0; tx < tiles; tx++) {
        let tmax = -Infinity;
        let tmin = Infinity;
        for (let r = ty * TILE; r < (ty + 1) * TILE; r += 2) {
          for (let c = tx * TILE; c < (tx + 1) * TILE; c += 2) {
            const v = m[r * n + c]!;
            if (v > tmax) tmax = v;
            if (v < tmin) tmin = v;
          }
        }
        tileMax[ty * tiles + tx] = tmax;
        tileMin[ty * tiles + tx] = tmin;
        if (tmax > max) max = tmax;
        if (tmin < min) min = tmin;
      }
    }
    // Extremes over each tile and its eight neighbours (which hold every coarse point within two
    // pixels of it): a 3 x 3 max (min) filter on the torus of tiles, rows then columns.
    const { rowMax, rowMin } = this;
    for (let ty = 0; ty < tiles; ty++) {
      for (let tx = 0; tx < tiles; tx++) {
        const t = ty * tiles;
        const l = t + (tx === 0 ? tiles - 1 : tx - 1);
        const r = t + (tx === tiles - 1 ? 0 : tx + 1);
        rowMax[t + tx] = Math.max(tileMax[l]!, tileMax[t + tx]!, tileMax[r]!);
        rowMin[t + tx] = Math.min(tileMin[l]!, tileMin[t + tx]!, tileMin[r]!);
      }
    }
    const bound = 1.5 * this.fineAmplitude;
    const cropTilesY = Math.ceil(height / TILE);
    const cropTilesX = Math.ceil(width / TILE);
    this.extremes = { min, max };
    for (let ty = 0; ty < tiles; ty++) {
      const up = (ty === 0 ? tiles - 1 : ty - 1) * tiles;
      const down = (ty === tiles - 1 ? 0 : ty + 1) * tiles;
      const row = ty * tiles;
      for (let tx = 0; tx < tiles; tx++) {
        const inCrop = ty < cropTilesY && tx < cropTilesX;
        const nmax = Math.max(rowMax[up + tx]!, rowMax[row + tx]!, rowMax[down + tx]!);
        const nmin = Math.min(rowMin[up + tx]!, rowMin[row + tx]!, rowMin[down + tx]!);
        if (inCrop || nmax + bound > max || nmin - bound < min) this.fineTile(ty * TILE, tx * TILE);
      }
    }
  }

  /**
   * Evaluates every finest-level point generate() skipped, with fresh draws, and returns the
   * extremes of the whole map: they equal generate()'s. For tests of the shortcut.
   */
  completeMap(rng: Random): { min: number; max: number } {
    this.rng = rng;
    for (let r = 0; r < this.mapSize; r += TILE) for (let c = 0; c < this.mapSize; c += TILE) this.fineTile(r, c);
    return { ...this.extremes };
  }

  /** The extremes generate() normalised with. */
  lastExtremes(): { min: number; max: number } {
    return { ...this.extremes };
  }

  /** The next fine-level draw, wibble * U(-wibble, wibble), from the map's stream in blocks. */
  private fineDraw(): number {
    if (this.fineNext === 0) this.rng!.fillUint32(this.fineDraws);
    const u = this.fineDraws[this.fineNext]!;
    this.fineNext = (this.fineNext + 1) % this.fineDraws.length;
    return this.fineAmplitude * ((2 * u) / 4294967296 - 1);
  }

  /** The finest-level square centre at odd (r, c), computed once per map. */
  private centre(r: number, c: number): number {
    const n = this.mapSize;
    const mask = n - 1;
    const p = (r & mask) * n + (c & mask);
    if (this.stamp[p] === this.generation) return this.map[p]!;
    const m = this.map;
    const up = ((r - 1) & mask) * n;
    const down = ((r + 1) & mask) * n;
    const left = (c - 1) & mask;
    const right = (c + 1) & mask;
    const v = (m[up + left]! + m[up + right]! + m[down + left]! + m[down + right]!) / 4 + this.fineDraw();
    this.record(p, v);
    return v;
  }

  /** Stores point p of the finest level and updates the extremes. */
  private record(p: number, v: number): void {
    this.map[p] = v;
    this.stamp[p] = this.generation;
    if (v > this.extremes.max) this.extremes.max = v;
    if (v < this.extremes.min) this.extremes.min = v;
  }

  /** Computes every finest-level point of the tile with top-left (r0, c0). */
  private fineTile(r0: number, c0: number): void {
    const n = this.mapSize;
    const mask = n - 1;
    const m = this.map;
    for (let r = r0; r < r0 + TILE; r++) {
      for (let c = c0; c < c0 + TILE; c++) {
        const oddR = r & 1;
        const oddC = c & 1;
        if ((!oddR && !oddC) || this.stamp[r * n + c] === this.generation) continue; // a coarse point, or done
        if (oddR && oddC) {
          this.centre(r, c);
        } else if (!oddR) {
          // Diamond on a corner row: corners left and right, centres above and below.
          const sum = m[r * n + ((c - 1) & mask)]! + m[r * n + ((c + 1) & mask)]! + this.centre(r - 1, c) + this.centre(r + 1, c);
          this.record(r * n + c, sum / 4 + this.fineDraw());
        } else {
          // Diamond on a centre row: corners above and below, centres left and right.
          const sum = m[((r - 1) & mask) * n + c]! + m[((r + 1) & mask) * n + c]! + this.centre(r, c - 1) + this.centre(r, c + 1);
          this.record(r * n + c, sum / 4 + this.fineDraw());
        }
      }
    }
  }
}
