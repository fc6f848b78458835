// Shared ownership kept in an autograd node's saved_data: the node holds what its backward needs
// (a solve in progress, an SDE's networks) alive for as long as the node itself lives, instead of a
// raw pointer whose target's lifetime someone else must arrange.
#pragma once
#include <ATen/core/ivalue.h>

#include <memory>

namespace sde {

template <typename T>
struct Owned final : torch::CustomClassHolder {
  explicit Owned(std::shared_ptr<T> p) : value(std::move(p)) {}
  std::shared_ptr<T> value;
};

template <typename T>
c10::IValue keep(std::shared_ptr<T> value) {
  return c10::IValue::make_capsule(c10::make_intrusive<Owned<T>>(std::move(value)));
}

template <typename T>
std::shared_ptr<T> kept(const c10::IValue& capsule) {
  return c10::static_intrusive_pointer_cast<Owned<T>>(capsule.toCapsule())->value;
}

}  // namespace sde
