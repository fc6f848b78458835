/**
 * A deep ensemble (Lakshminarayanan et al., 2017): K classifiers of the same architecture trained
 * from different seeds (initialisation and shuffling) on the same data, predicting as the equal
 * mixture of their softmaxes. Its predict has SdeBnn.predict's shape, each member contributing
 * samples / K of the paths, so predictDataset, evaluateUncertainty and the report treat it as a
 * model whose paths are its members: mutual information is then the members' disagreement.
 *
 * One checkpoint file (safetensors, written atomically: a failed write leaves the previous file):
 *   metadata format 'sdebnn-ensemble', version '1', configs (JSON array of the members' resolved configs)
 *   tensors  'member.<m>.<name>' for every tensor of member m's getState()
 */
import type { DeviceSpec } from './backend';
import { SdeBnn, type BnnInputs, type BnnPredictOptions, type ClassificationPrediction } from './bnn';
import { configOnDevice, type ResolvedSdeBnnConfig, type SdeBnnConfig } from './bnn-config';
import { loadCheckpoint, saveCheckpoint, type CheckpointTensor } from './checkpoint';
import type { Dataset } from './data/dataset';
import { DataFormatError } from './errors';
import { classificationMetrics, type ClassificationMetrics } from './metrics';
import { predictDataset, type DatasetClassification } from './predict';
import type { Tensor } from './tensor';
import { train, type TrainOptions, type TrainResult } from './train';
import {
  describe,
  expectBoolean,
  expectFunction,
  expectInteger,
  expectKnownKeys,
  expectObject,
  expectOptionalObject,
  expectPositiveInteger,
  expectString,
  optional,
} from './validate';

/** The checkpoint format of a deep ensemble (a single model's is 'sdebnn'). */
export const ENSEMBLE_FILE_FORMAT = 'sdebnn-ensemble';
const ENSEMBLE_FILE_VERSION = '1';
/** Members of a deep ensemble by default: the five of Lakshminarayanan et al. (2017). */
export const DEFAULT_ENSEMBLE_MEMBERS = 5;

const prefix = (m: number) => `member.${m}.`;

/** Whether `file` is a deep ensemble's checkpoint (its metadata format), without building anything. */
export function isEnsembleCheckpoint(file: string): boolean {
  return loadCheckpoint(expectString(file, 'file')).metadata.format === ENSEMBLE_FILE_FORMAT;
}

/** The model saved in `file`: a DeepEnsemble or an SdeBnn (of any config.model), by the checkpoint's format. */
export function loadModel(file: string, options: { device?: DeviceSpec } = {}): SdeBnn | DeepEnsemble {
  return isEnsembleCheckpoint(file) ? DeepEnsemble.load(file, options) : SdeBnn.load(file, options);
}

/** K classifiers predicting as their mixture; see the file's comment. Owns its members: dispose() frees them. */
export class DeepEnsemble {
  /** The members' shared architecture: member 0's config (input shape, classes, likelihood). */
  readonly config: Readonly<ResolvedSdeBnnConfig>;
  readonly members: readonly SdeBnn[];
  /** Learnable scalars of all members together. */
  readonly numParameters: number;
  private isDisposed = false;

  /** An ensemble of trained or fresh members, at least one, all classifiers of the same input shape and classes. */
  constructor(members: readonly SdeBnn[]) {
    const given: unknown = members;
    if (!Array.isArray(given) || members.length === 0)
      throw new TypeError(`Expected a non-empty array of SdeBnn for members but received ${describe(members)}`);
    members.forEach((m, i) => {
      if (!(m instanceof SdeBnn)) throw new TypeError(`Expected an SdeBnn for members[${i}] but received ${describe(m)}`);
    });
    const first = members[0]!.config;
    if (first.likelihood !== 'categorical') {
      throw new RangeError(`Expected classifiers (likelihood 'categorical') as members but members[0] has likelihood '${first.likelihood}'`);
    }
    members.forEach((m, i) => {
      const c = m.config;
      if (c.likelihood !== 'categorical' || c.classes !== first.classes || c.inputShape.join(',') !== first.inputShape.join(',')) {
        throw new RangeError(
          `Expected members[${i}] to be a classifier of inputs [${first.inputShape.join(', ')}] and ${first.classes} classes (as members[0]) but received ` +
            `${c.likelihood} of inputs [${c.inputShape.join(', ')}]${c.likelihood === 'categorical' ? ` and ${c.classes} classes` : ''}`,
        );
      }
    });
    this.members = Object.freeze([...members]);
    this.config = first;
    this.numParameters = members.reduce((a, m) => a + m.numParameters, 0);
  }

  /**
   * K fresh members of `config` (default model 'resnet'), member m with seed config.seed + m, so
   * that each starts from its own initialisation.
   */
  static create(config: SdeBnnConfig = {}, options: { members?: number } = {}): DeepEnsemble {
    const c = expectOptionalObject(config, 'config') as SdeBnnConfig;
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['members']);
    const k = optional(o.members, DEFAULT_ENSEMBLE_MEMBERS, (v) => expectPositiveInteger(v, 'options.members'));
    const seed = c.seed ?? 0;
    const members: SdeBnn[] = [];
    try {
      for (let m = 0; m < k; m++) members.push(new SdeBnn({ model: 'resnet', ...c, seed: seed + m }));
      return new DeepEnsemble(members);
    } catch (error) {
      for (const m of members) m.dispose();
      throw error;
    }
  }

  get size(): number {
    return this.members.length;
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * The mixture's class probabilities: `samples` paths (default K, a multiple of K), samples / K
   * from each member, averaged with equal weight; with returnSamples every path's, member by
   * member, [samples, batch, classes]. With `seed`, member m draws from the private stream
   * seed * K + m. deterministic: the mean of the members' deterministic views, as one path.
   */
  predict(inputs: BnnInputs, options: BnnPredictOptions = {}): Promise<ClassificationPrediction> {
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['samples', 'ema', 'seed', 'returnSamples', 'deterministic']);
    const k = this.members.length;
    const deterministic = optional(o.deterministic, false, (v) => expectBoolean(v, 'options.deterministic'));
    const samples = optional(o.samples, deterministic ? 1 : k, (v) => expectPositiveInteger(v, 'options.samples'));
    if (deterministic && samples !== 1) {
      throw new RangeError(`Expected options.samples 1 (or none) with options.deterministic, the members' mean as one path, but received ${samples}`);
    }
    if (!deterministic && samples % k !== 0) {
      throw new RangeError(`Expected options.samples to be a multiple of the ${k} members (an equal share of paths each) but received ${samples}`);
    }
    const seed = o.seed === undefined ? undefined : expectInteger(o.seed, 'options.seed', 0, Number.MAX_SAFE_INTEGER);
    if (seed !== undefined && seed * k + k > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(`Expected options.seed at most ${Math.floor(Number.MAX_SAFE_INTEGER / k) - 1} for ${k} members but received ${seed}`);
    }
    const ema = optional(o.ema, false, (v) => expectBoolean(v, 'options.ema'));
    const returnSamples = optional(o.returnSamples, false, (v) => expectBoolean(v, 'options.returnSamples'));
    const per = deterministic ? 1 : samples / k;
    const memberPredict = (m: number) =>
      this.members[m]!.predict(inputs, {
        samples: per,
        ema,
        deterministic,
        returnSamples: !deterministic,
        ...(seed === undefined ? {} : { seed: seed * k + m }),
      }) as Promise<ClassificationPrediction>;
    // Member 0's call checks the inputs before any native work, and throws here, as SdeBnn.predict does.
    const first = memberPredict(0);
    return (async () => {
      // One member at a time: each uses LibTorch's threads fully.
      const outs = [await first];
      for (let m = 1; m < k; m++) outs.push(await memberPredict(m));
      return mixture(outs, { deterministic, returnSamples });
    })();
  }

  /** Every member's state under the prefix 'member.<m>.' (SdeBnn.getState of each). */
  getState(): Record<string, Tensor> {
    const state: Record<string, Tensor> = {};
    this.members.forEach((member, m) => {
      for (const [name, t] of Object.entries(member.getState())) state[prefix(m) + name] = t;
    });
    return state;
  }

  /** Writes every member's config and state to one file, atomically (see the file's comment). */
  save(file: string): void {
    const tensors: Record<string, CheckpointTensor> = {};
    for (const [name, t] of Object.entries(this.getState())) tensors[name] = { data: t.data, shape: t.shape };
    saveCheckpoint(expectString(file, 'file'), tensors, {
      format: ENSEMBLE_FILE_FORMAT,
      version: ENSEMBLE_FILE_VERSION,
      configs: JSON.stringify(this.members.map((m) => m.config)),
    });
  }

  /** The ensemble saved in `file`, every member's state restored. `device` overrides the saved device. */
  static load(file: string, options: { device?: DeviceSpec } = {}): DeepEnsemble {
    const f = expectString(file, 'file');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['device']);
    const checkpoint = loadCheckpoint(f);
    const { format, version, configs: text } = checkpoint.metadata;
    if (format !== ENSEMBLE_FILE_FORMAT || version !== ENSEMBLE_FILE_VERSION) {
      throw new DataFormatError(
        `Checkpoint ${f} is not a deep ensemble of version ${ENSEMBLE_FILE_VERSION} (format ${format ?? 'none'}, version ${version ?? 'none'})`,
        'ERR_DATA_FORMAT',
      );
    }
    let configs: unknown;
    try {
      configs = JSON.parse(text ?? '');
    } catch (error) {
      throw new DataFormatError(`Checkpoint ${f}: metadata configs is not valid JSON (${(error as Error).message})`, 'ERR_DATA_FORMAT');
    }
    if (!Array.isArray(configs) || configs.length === 0 || !configs.every((c) => typeof c === 'object' && c !== null && !Array.isArray(c))) {
      throw new DataFormatError(`Checkpoint ${f}: metadata configs is not a non-empty array of configs (${describe(configs)})`, 'ERR_DATA_FORMAT');
    }
    const states: Record<string, Tensor>[] = configs.map(() => ({}));
    for (const [name, t] of Object.entries(checkpoint.tensors)) {
      const match = /^member\.(\d+)\.(.+)$/.exec(name);
      const m = match ? Number(match[1]) : -1;
      if (!match || m >= configs.length)
        throw new DataFormatError(`Checkpoint ${f}: tensor ${name} belongs to none of its ${configs.length} members`, 'ERR_DATA_FORMAT');
      if (!(t.data instanceof Float32Array) && !(t.data instanceof Float64Array)) {
        throw new DataFormatError(`Checkpoint ${f}: tensor ${name} has dtype ${t.dtype}; expected F32 or F64`, 'ERR_DATA_FORMAT');
      }
      states[m]![match[2]!] = { data: t.data, shape: t.shape };
    }
    const members: SdeBnn[] = [];
    try {
      configs.forEach((config, m) => {
        const member = new SdeBnn(configOnDevice(config as SdeBnnConfig, o.device as DeviceSpec | undefined));
        members.push(member);
        member.setState(states[m]!);
      });
      return new DeepEnsemble(members);
    } catch (error) {
      for (const m of members) m.dispose();
      throw error;
    }
  }

  /** Frees every member; later calls throw an error with code ERR_DISPOSED. */
  dispose(): void {
    for (const m of this.members) if (!m.disposed) m.dispose();
    this.isDisposed = true;
  }
}

/** The members' predictions as one: their paths side by side and the mean over all of them (or, deterministic, the members' mean as one path). */
function mixture(outs: ClassificationPrediction[], o: { deterministic: boolean; returnSamples: boolean }): ClassificationPrediction {
  const [b, c] = outs[0]!.shape;
  const Float = outs[0]!.probs instanceof Float64Array ? Float64Array : Float32Array;
  const probs = new Float(b * c);
  if (o.deterministic) {
    for (const out of outs) for (let j = 0; j < b * c; j++) probs[j]! += out.probs[j]! / outs.length;
    return {
      kind: 'categorical',
      probs,
      shape: [b, c],
      ...(o.returnSamples ? { samples: probs.slice(), samplesShape: [1, b, c] as [number, number, number] } : {}),
    };
  }
  const per = outs[0]!.samplesShape![0];
  const s = per * outs.length;
  const samples = new Float(s * b * c);
  outs.forEach((out, m) => samples.set(out.samples!, m * per * b * c));
  // The mean over all paths, accumulated in float64 (the members' own means are of float32 paths).
  const sum = new Float64Array(b * c);
  for (let i = 0; i < s; i++) for (let j = 0; j < b * c; j++) sum[j]! += samples[i * b * c + j]!;
  for (let j = 0; j < b * c; j++) probs[j] = sum[j]! / s;
  return { kind: 'categorical', probs, shape: [b, c], ...(o.returnSamples ? { samples, samplesShape: [s, b, c] as [number, number, number] } : {}) };
}

/** Options of trainEnsemble: train()'s schedule for each member, and a log file per member. */
export type EnsembleTrainOptions = Omit<TrainOptions, 'logFile' | 'checkpointFile' | 'resume' | 'distributed' | 'evalEachEpoch'> & {
  /** The JSON-lines log of member m (train()'s logFile). */
  logFile?: (member: number) => string;
};

/** What trainEnsemble resolves with: each member's run, their sums, and the ensemble's test metrics. */
export interface EnsembleTrainResult {
  members: TrainResult[];
  /** Training steps of all members together. */
  steps: number;
  seconds: number;
  trainSeconds: number;
  /** Whether any member stopped at its share of the time limit. */
  stoppedEarly: boolean;
  /** The mixture on data.test with evalSamples paths per member (default 1). */
  test?: ClassificationMetrics;
}

/**
 * Trains the members one after another with train(), member m with seed options.seed + m (its
 * own shuffling) and timeLimit / K (the ensemble as a whole keeps the time limit), then
 * evaluates the mixture on data.test.
 */
export async function trainEnsemble(
  ensemble: DeepEnsemble,
  data: { train: Dataset; test?: Dataset },
  options: EnsembleTrainOptions = {},
): Promise<EnsembleTrainResult> {
  if (!(ensemble instanceof DeepEnsemble)) throw new TypeError(`Expected a DeepEnsemble for ensemble but received ${describe(ensemble)}`);
  const d = expectObject(data, 'data');
  expectKnownKeys(d, 'data', ['train', 'test']);
  const o = expectOptionalObject(options, 'options');
  for (const key of ['checkpointFile', 'resume', 'distributed', 'evalEachEpoch']) {
    if (o[key] !== undefined)
      throw new RangeError(`Expected no options.${key} for an ensemble (its members train in memory, one process) but received ${describe(o[key])}`);
  }
  const logFile = o.logFile === undefined ? undefined : expectFunction<(member: number) => string>(o.logFile, 'options.logFile');
  const evalSamples = optional(o.evalSamples, 1, (v) => expectPositiveInteger(v, 'options.evalSamples'));
  const seed = optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, 2 ** 32 - 1 - ensemble.size));
  const { logFile: _log, evalSamples: _samples, ...shared } = options;
  const k = ensemble.size;
  const started = Date.now();
  const results: TrainResult[] = [];
  for (let m = 0; m < k; m++) {
    results.push(
      await train(
        ensemble.members[m]!,
        { train: d.train as Dataset },
        {
          ...shared,
          seed: seed + m,
          ...(shared.timeLimit !== undefined ? { timeLimit: shared.timeLimit / k } : {}),
          evalEachEpoch: false,
          ...(logFile ? { logFile: logFile(m) } : {}),
        },
      ),
    );
  }
  let test: ClassificationMetrics | undefined;
  if (d.test !== undefined) {
    const testSet = d.test as Dataset;
    const out = (await predictDataset(ensemble, testSet, {
      samples: k * evalSamples,
      ...(o.evalBatchSize !== undefined ? { batchSize: o.evalBatchSize as number } : {}),
    })) as DatasetClassification;
    test = classificationMetrics({ data: out.probs, shape: [out.count, out.classes] }, testSet.targets);
  }
  return {
    members: results,
    steps: results.reduce((a, r) => a + r.steps, 0),
    seconds: (Date.now() - started) / 1000,
    trainSeconds: results.reduce((a, r) => a + r.trainSeconds, 0),
    stoppedEarly: results.some((r) => r.stoppedEarly),
    ...(test ? { test } : {}),
  };
}
