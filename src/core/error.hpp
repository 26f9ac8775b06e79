#pragma once
// Errors: every user-facing failure is a frugal::Error whose message names the problem
// (which key, which file, which rank count). The CLI prints it and exits non-zero.
#include <sstream>
#include <stdexcept>
#include <string>

namespace frugal {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(Args&&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

}  // namespace frugal

// FRUGAL_CHECK(cond, "message ", value, ...): throws frugal::Error with the message when !cond.
#define FRUGAL_CHECK(cond, ...)                   \
  do {                                            \
    if (!(cond)) ::frugal::fail(__VA_ARGS__);     \
  } while (0)
