#include <algorithm>

#include "comm/network_model.hpp"
#include "core/error.hpp"
#include "harness/method.hpp"
#include "harness/runner.hpp"

namespace frugal {

namespace {
std::vector<MethodInfo>& methods() {
  static std::vector<MethodInfo> m;  // function-local: safe from static initialisation order
  return m;
}
}  // namespace

bool register_method(MethodInfo info) {
  methods().push_back(std::move(info));
  std::sort(methods().begin(), methods().end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return true;
}

const std::vector<MethodInfo>& registered_methods() { return methods(); }

const MethodInfo& find_method(const std::string& name) {
  for (const auto& m : methods())
    if (m.name == name) return m;
  std::string known;
  for (const auto& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  fail("unknown method '", name, "' (known: ", known, ")");
}

std::string cuda_method_names() {
  std::string names;
  for (const auto& m : methods())
    if (m.cuda) names += (names.empty() ? "" : ", ") + m.name;
  return names;
}

std::string device_comm_method_names() {
  std::string names;
  for (const auto& m : methods())
    if (m.device_comm) names += (names.empty() ? "" : ", ") + m.name;
  return names;
}

const Schema& suite_schema() {
  static const Schema schema = [] {
    Schema s;
    std::vector<std::string> names;
    for (const auto& m : methods()) names.push_back(m.name);
    add_run_keys(s, names);
    add_network_keys(s);
    std::vector<void (*)(Schema&)> added;
    for (const auto& m : methods())
      for (auto* section : m.sections)
        if (std::find(added.begin(), added.end(), section) == added.end()) {
          section(s);
          added.push_back(section);
        }
    return s;
  }();
  return schema;
}

}  // namespace frugal
