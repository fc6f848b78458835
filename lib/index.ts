/**
 * sdebnn: infinitely deep Bayesian neural networks (SDE-BNNs) on a native LibTorch engine.
 */
export { backend, setNumThreads, resolveDevice, selfTest } from './backend';
export type { Backend, DeviceSpec, SelfTestOptions, SelfTestResult } from './backend';
export { tensor, numel } from './tensor';
export type { Tensor, FloatArray } from './tensor';
export { SdebnnError, DeviceUnavailableError, TorchError, NumericalError, DataFormatError, NativeError } from './errors';
export { SdeBnn, resolveSdeBnnConfig, BNN_ACTIVATIONS, BNN_METHODS, BNN_ESTIMATORS, BNN_LIKELIHOODS } from './bnn';
export type {
  SdeBnnConfig,
  SdeBnnSolverConfig,
  ResolvedSdeBnnConfig,
  BnnActivation,
  BnnMethod,
  BnnEstimator,
  BnnLikelihood,
  Labels,
  Inputs,
  TrainStepOptions,
  TrainStepResult,
  PredictOptions,
  ClassificationPrediction,
  RegressionPrediction,
  GradientsOptions,
  GradientsResult,
  BlockDiagnostics,
} from './bnn';
