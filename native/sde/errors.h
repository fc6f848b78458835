// Errors thrown by the engine carry a stable code that the addon hands to JavaScript.
#pragma once
#include <stdexcept>
#include <string>

namespace sde {

class EngineError : public std::runtime_error {
 public:
  EngineError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// A bad argument that slipped past the TypeScript checks (or came from C++ callers).
inline EngineError invalid_argument(const std::string& message) {
  return EngineError("ERR_INVALID_ARGUMENT", message);
}

}  // namespace sde
