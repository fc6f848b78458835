/**
 * JPEG compression through jpeg-js (the npm registry's pure-JavaScript baseline codec, no
 * dependencies): each image is encoded at the given quality and decoded back, as
 * make_cifar_c.py does with PIL's JPEG.
 *
 * jpeg-js encodes 4:4:4 (no chroma subsampling) with the IJG quality scaling of the standard
 * tables, so its quality means what libjpeg's does; PIL's default, which CIFAR-10-C used, also
 * halves the chroma resolution (4:2:0), so these artefacts are milder in colour than the
 * released files'. Without subsampling every 8 x 8 block is quantised alone, so a mosaic of
 * images whose sides are multiples of 8 compresses each image exactly as encoding it alone
 * would: that is how this module batches, because jpeg-js builds its tables anew on every
 * encode call (about 0.25 s, far more than a 32 x 32 image's own work).
 */
import { decode, encode } from 'jpeg-js';
import type { BatchKernel, KernelFactory } from './kernel';

/** Images per mosaic side: 64 x 64 CIFAR images make 2048 x 2048 pixels (16 MiB as RGBA). */
const MOSAIC_SIDE = 64;

/** jpeg_compression: encode at `quality` (1-100) and decode, 8-bit RGB in between (round(x * 255)). */
export function jpegCompression(quality: number): KernelFactory {
  return ({ channels, height, width }): BatchKernel => {
    if (channels !== 3) throw new RangeError(`Expected 3 channels (RGB) for jpeg_compression but received ${channels}`);
    if (height % 8 !== 0 || width % 8 !== 0) {
      throw new RangeError(`Expected image sides divisible by 8 for jpeg_compression but received ${height} x ${width}`);
    }
    const size = height * width;
    return {
      batch(src, dst, count) {
        const perMosaic = MOSAIC_SIDE * MOSAIC_SIDE;
        for (let first = 0; first < count; first += perMosaic) {
          const n = Math.min(perMosaic, count - first);
          const cols = Math.min(n, MOSAIC_SIDE);
          const rows = Math.ceil(n / cols);
          const mw = cols * width;
          const rgba = new Uint8Array(mw * rows * height * 4);
          // Pixel (y, x) of tile k sits at mosaic row (k / cols) * height + y, column (k % cols) * width + x.
          const at = (k: number, y: number, x: number) => ((Math.floor(k / cols) * height + y) * mw + (k % cols) * width + x) * 4;
          for (let k = 0; k < n; k++) {
            const o = (first + k) * 3 * size;
            for (let y = 0; y < height; y++) {
              for (let x = 0; x < width; x++) {
                const p = at(k, y, x);
                for (let c = 0; c < 3; c++) rgba[p + c] = Math.round(Math.min(1, Math.max(0, src[o + c * size + y * width + x]!)) * 255);
                rgba[p + 3] = 255;
              }
            }
          }
          const jpeg = encode({ data: rgba, width: mw, height: rows * height }, quality);
          const back = decode(jpeg.data, { useTArray: true, formatAsRGBA: true }).data;
          for (let k = 0; k < n; k++) {
            const o = (first + k) * 3 * size;
            for (let y = 0; y < height; y++) {
              for (let x = 0; x < width; x++) {
                const p = at(k, y, x);
                for (let c = 0; c < 3; c++) dst[o + c * size + y * width + x] = back[p + c]! / 255;
              }
            }
          }
        }
      },
    };
  };
}
