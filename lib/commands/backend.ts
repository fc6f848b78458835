/** `sdebnn backend`: the LibTorch version, CUDA and threads; --self-test runs checked matrix products. */
import { backend, selfTest } from '../backend';
import { common, formatHelp, parseFlags, toggle } from './args';

const FLAGS = {
  'self-test': toggle('also run checked matrix products and print their speed and error'),
  device: common.device,
};

export async function backendCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('backend', argv, FLAGS);
  if (parsed.help) {
    console.log(formatHelp('Usage: sdebnn backend [--self-test [--device D]]\nPrints the backend as JSON: LibTorch version, CUDA devices, threads.', FLAGS));
    return 0;
  }
  console.log(JSON.stringify(backend()));
  if (parsed.values['self-test']) console.log(JSON.stringify(await selfTest({ device: parsed.values.device ?? 'cpu' })));
  return 0;
}
