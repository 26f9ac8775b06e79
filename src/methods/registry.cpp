#include <algorithm>

#include "comm/network_model.hpp"
#include "methods/method.hpp"
#include "methods/es.hpp"
#include "methods/rl.hpp"
#include "methods/runner.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

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

DomainNames domain_names(Domain d) {
  if (d == Domain::rl) return {"env_steps", "return", "return"};
  return {"tokens", "loss", "loss"};
}

const std::vector<MethodInfo>& registered_methods() { return methods(); }

const MethodInfo& find_method(const std::string& name) {
  for (const auto& m : methods())
    if (m.name == name) return m;
  std::string known;
  for (const auto& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  fail("unknown method '", name, "' (known: ", known, ")");
}

const Schema& suite_schema() {
  static const Schema schema = [] {
    Schema s;
    std::vector<std::string> names;
    for (const auto& m : methods()) names.push_back(m.name);
    add_run_keys(s, names);
    add_model_keys(s);
    add_data_keys(s);
    add_optim_keys(s);
    add_network_keys(s);
    add_rl_keys(s);
    add_es_keys(s);  // shared by eggroll and openai_es
    for (const auto& m : methods())
      if (m.add_keys) m.add_keys(s);
    return s;
  }();
  return schema;
}

}  // namespace frugal
