/**
 * sdebnn: infinitely deep Bayesian neural networks (SDE-BNNs) on a native LibTorch engine.
 */
export { backend, setNumThreads, resolveDevice, selfTest } from './backend';
export type { Backend, DeviceSpec, SelfTestOptions, SelfTestResult } from './backend';
export { BrownianInterval, type BrownianIntervalOptions, type BrownianDtype } from './brownian';
export { tensor, numel } from './tensor';
export type { Tensor, FloatArray } from './tensor';
export { SdebnnError, DeviceUnavailableError, TorchError, NumericalError, DataFormatError, NativeError } from './errors';
