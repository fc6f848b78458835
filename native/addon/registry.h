// Each binding file registers its exports through one function declared here, so module
// init stays a list.
#pragma once
#include <napi.h>

namespace addon {
void register_core(Napi::Env env, Napi::Object exports);
void register_brownian(Napi::Env env, Napi::Object exports);
void register_sdeint(Napi::Env env, Napi::Object exports);
void register_bnn(Napi::Env env, Napi::Object exports);
void register_distributed(Napi::Env env, Napi::Object exports);
}  // namespace addon
