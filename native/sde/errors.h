// Errors thrown by the engine carry a stable code that the addon hands to JavaScript.
#pragma once
#include <stdexcept>
#include <string>

namespace sde {

class EngineError : public std::runtime_error {
 public:
  EngineError(std::string code, const std::string& message, std::string option = "")
      : std::runtime_error(message), code_(std::move(code)), option_(std::move(option)) {}
  const std::string& code() const { return code_; }
  // For ERR_LIMIT: the option that raises the limit (e.g. "options.maxSteps").
  const std::string& option() const { return option_; }

 private:
  std::string code_;
  std::string option_;
};

// A bad argument that slipped past the TypeScript checks (or came from C++ callers).
inline EngineError invalid_argument(const std::string& message) { return EngineError("ERR_INVALID_ARGUMENT", message); }

// A safety limit (steps, bytes) would be exceeded; `option` names the setting that raises it.
inline EngineError limit_exceeded(const std::string& option, const std::string& message) {
  return EngineError("ERR_LIMIT", message, option);
}

}  // namespace sde
