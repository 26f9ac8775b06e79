#pragma once
// Small helpers shared by the unit tests.
#include <functional>
#include <string>

#include "core/error.hpp"

// The message of the frugal::Error that f throws ("" if it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const frugal::Error& e) {
    return e.what();
  }
  return "";
}
