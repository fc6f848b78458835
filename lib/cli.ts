#!/usr/bin/env node
/** The sdebnn command line: dispatches to lib/commands/<command>.ts; usage errors exit 2, failures 1. */
import { reportToLauncher } from './launch';
import { UsageError } from './commands/args';
import { backendCommand } from './commands/backend';
import { compareCommand, compareUsage } from './commands/compare';
import { evalCommand, evalUsage, reportCommand, reportUsage } from './commands/evaluate';
import { predictCommand, predictUsage } from './commands/predict';
import { trainCommand, trainUsage } from './commands/train';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; usage: string; about: string }> = {
  train: {
    run: trainCommand,
    usage: trainUsage,
    about: 'train an SDE-BNN or a baseline (--model; a preset: --preset NAME) and evaluate it on the test set',
  },
  eval: { run: evalCommand, usage: evalUsage, about: 'evaluate a checkpoint: calibration, corruptions (shift) and OOD detection' },
  report: { run: reportCommand, usage: reportUsage, about: 'the HTML report of a training run (RUN_DIR/report.html)' },
  compare: {
    run: compareCommand,
    usage: compareUsage,
    about: 'train every model for the same time budget, evaluate each the same way, and print one table',
  },
  predict: { run: predictCommand, usage: predictUsage, about: 'class probabilities (or predictive mean and std) for new inputs' },
  backend: {
    run: backendCommand,
    usage: 'Usage: sdebnn backend [--self-test [--device D]]',
    about: 'LibTorch version, CUDA and threads; --self-test runs checked matrix products',
  },
};

const usage = `Usage: sdebnn <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)}${c.about}`)
  .join('\n')}

Run 'sdebnn <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage);
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name]! : undefined;
  if (!command) {
    console.error(`sdebnn: unknown command '${name}'\n\n${usage}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`sdebnn ${name}: ${error.message}\n${command.usage}\nRun 'sdebnn ${name} --help' for the options.`);
    return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`sdebnn${process.env.RANK !== undefined ? ` (rank ${process.env.RANK})` : ''}: ${message}`);
    process.exitCode = 1;
    await reportToLauncher(message);
  },
);
