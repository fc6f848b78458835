/**
 * sdebnn: infinitely deep Bayesian neural networks (SDE-BNNs) on a native LibTorch engine.
 */
export { backend, setNumThreads, resolveDevice, selfTest } from './backend';
export { cudaMathMode, cudaMemoryStats, setCudaMathMode } from './gpu';
export type { CudaMathMode, CudaMemoryStats } from './gpu';
export type { Backend, DeviceSpec, SelfTestOptions, SelfTestResult } from './backend';
export { BrownianInterval, type BrownianIntervalOptions, type BrownianDtype } from './brownian';
export { tensor, numel } from './tensor';
export type { Tensor, FloatArray } from './tensor';
export {
  SdebnnError,
  DeviceUnavailableError,
  TorchError,
  NumericalError,
  DataFormatError,
  NativeError,
  DistributedUnavailableError,
  DistributedError,
  LimitError,
} from './errors';
export { LIMIT_DEFAULTS } from './limits';
export { Random } from './random';
export type { RandomState } from './random';
export { readIdx, parseIdx } from './data/idx';
export type { IdxData, IdxReadOptions } from './data/idx';
export { loadMnist, defaultMnistDir, MNIST_MEAN, MNIST_STD } from './data/mnist';
export type { MnistOptions } from './data/mnist';
export { loadCifar10, checkCifarBatch, augmentBatch, randomCrop, randomHorizontalFlip, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES } from './data/cifar';
export type { Cifar10Options, AugmentOptions } from './data/cifar';
export { toyRegression, toyGrid, toyModelConfig, TOY_CLUSTERS } from './data/toy';
export type { ToyRegression, ToyRegressionOptions, GridOptions } from './data/toy';
export { loadOodImages, syntheticImages, fashionMnistAvailable, FASHION_MNIST_DIR, SYNTHETIC_OOD } from './data/ood';
export type { OodImages, OodOptions } from './data/ood';
export { createDataset, imageDataset, subset, splitDataset, MinibatchIterator } from './data/dataset';
export type { Dataset, DatasetInit, ImageSet, Targets, Batch, MinibatchOptions, MinibatchState } from './data/dataset';
export {
  accuracy,
  nll,
  brierScore,
  expectedCalibrationError,
  adaptiveCalibrationError,
  maxCalibrationError,
  calibrationBins,
  predictiveEntropy,
  classificationMetrics,
  meanProbabilities,
  checkProbabilities,
  predictiveMoments,
  gaussianNll,
  rmse,
  regressionMetrics,
} from './metrics';
export type { MatrixLike, Labels, CalibrationBins, ClassificationMetrics, PredictiveMoments, GaussianNllOptions, RegressionMetrics } from './metrics';
export {
  decomposeUncertainty,
  totalEntropy,
  expectedEntropy,
  mutualInformation,
  maxProbability,
  variationRatio,
  checkSampleProbabilities,
} from './uncertainty';
export type { UncertaintySummary, UncertaintyDecomposition } from './uncertainty';
export { oodDetection, rocCurve, selectivePrediction } from './score-metrics';
export type { OodDetection, OodScoreOptions, RocCurve, SelectivePrediction, ScoreArray } from './score-metrics';
export { saveCheckpoint, loadCheckpoint, parseCheckpoint, checkpointMismatches, expectCheckpoint, MAX_HEADER_BYTES } from './checkpoint';
export type { Checkpoint, CheckpointTensor, CheckpointArray, LoadedTensor, Dtype, ExpectedCheckpoint } from './checkpoint';
export { SDE, sdeint, sdeintGradients, validateSpec, methods, activations, METHODS, ACTIVATIONS, NOISE_TYPES, SDE_TYPES } from './sde';
export type {
  SDESpec,
  GbmSpec,
  OuSpec,
  LinearSpec,
  NeuralSpec,
  MlpSpec,
  Method,
  NoiseType,
  SdeType,
  SdeintOptions,
  SdeintResult,
  GradientsResult,
  SolveStats,
  Route,
  MethodInfo,
  Activation,
  FloatDtype,
  SdeSpecCommon,
} from './sde';
export { SdeBnn } from './bnn';
export { resolveSdeBnnConfig, BNN_ACTIVATIONS, BNN_METHODS, BNN_ESTIMATORS, BNN_LIKELIHOODS, BNN_MODELS } from './bnn-config';
export type { SdeBnnConfig, SdeBnnSolverConfig, ResolvedSdeBnnConfig, BnnActivation, BnnMethod, BnnEstimator, BnnLikelihood, BnnModelKind } from './bnn-config';
export type {
  BnnRoute,
  BnnTargets,
  BnnInputs,
  BnnTrainStepOptions,
  BnnTrainStepResult,
  BnnPredictOptions,
  ClassificationPrediction,
  RegressionPrediction,
  BnnGradientsOptions,
  BnnGradientsResult,
  BnnBlockDiagnostics,
} from './bnn';
export { train, evaluate, learningRate, saveTrainingCheckpoint, readTrainingCheckpoint } from './train';
export type { TrainOptions, TrainResult, StepLog, EpochLog } from './train';
export { initDistributed, distributedAvailability, deviceForRank, ProcessGroup } from './distributed';
export type { InitDistributedOptions, DistributedAvailability, DistributedBackend, ReduceOp } from './distributed';
export type { DistributedTrainOptions, WeightPaths } from './data-parallel';
export { launch } from './launch';
export type { LaunchOptions, LaunchResult, WorkerExit } from './launch';
export { DeepEnsemble, trainEnsemble, loadModel, isEnsembleCheckpoint, ENSEMBLE_FILE_FORMAT, DEFAULT_ENSEMBLE_MEMBERS } from './ensemble';
export type { EnsembleTrainOptions, EnsembleTrainResult } from './ensemble';
export {
  COMPARED_MODELS,
  sizeModels,
  parametersAt,
  evaluationSamples,
  hasDeterministicView,
  comparisonRow,
  comparisonCells,
  formatComparison,
} from './compare';
export type { ComparedModel, ComparisonRow, ModelSizing } from './compare';
export { renderComparison, writeComparison } from './report/compare-page';
export type { ComparisonReportInput } from './report/compare-page';
export { predictDataset, DEFAULT_PREDICT_BATCH_SIZE } from './predict';
export type { Predictor, PredictDatasetOptions, PredictProgress, DatasetPrediction, DatasetClassification, DatasetRegression } from './predict';
export { evaluateUncertainty, histogram, OOD_SCORES } from './evaluate';
export type {
  Evaluation,
  EvaluationOptions,
  EvaluationProgress,
  CleanEvaluation,
  ShiftEvaluation,
  OodEvaluation,
  Histogram,
  UncertaintyMeans,
  CorruptionLike,
  ShiftSuiteLike,
  OodScoreName,
} from './evaluate';
export { renderReport, writeReport, readTrainingLog } from './report/page';
export type { ReportInput, TrainingLog, RegressionBand } from './report/page';
export { formatEvaluation } from './report/table';
export { corruptions, corrupt, SHIFT_SUITES } from './shift';
export type { ShiftSuite, Corruption, CorruptOptions, ImageShape } from './shift';
