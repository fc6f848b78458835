#!/usr/bin/env node
/** The sdebnn command line. */
import { backend, selfTest } from './backend';

const usage = `Usage: sdebnn <command> [options]

Commands:
  backend [--self-test] [--device D]   LibTorch version, CUDA, threads; optionally a checked matmul run

Run 'sdebnn <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    console.log(usage);
    return command === undefined ? 1 : 0;
  }
  if (command === 'backend') {
    console.log(JSON.stringify(backend()));
    if (rest.includes('--self-test')) {
      const i = rest.indexOf('--device');
      const device = (i >= 0 ? rest[i + 1] : 'cpu') as 'cpu';
      console.log(JSON.stringify(await selfTest({ device })));
    }
    return 0;
  }
  console.error(`sdebnn: unknown command '${command}'\n\n${usage}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`sdebnn: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
