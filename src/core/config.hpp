#pragma once
// Configuration: a schema of every key the suite understands (type, default, doc, limits), TOML
// files, and --section.key=value overrides. Resolution order: defaults < file < command line.
// Unknown keys, wrong types and out-of-range values are errors that name the key and its source.
// Components declare their keys with add_*_keys(Schema&) functions; `frugal --help` prints the
// whole schema, so the documentation cannot drift from the code.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace frugal {

using Value = std::variant<int64_t, double, bool, std::string>;

struct KeySpec {
  std::string key;  // "section.name"
  Value default_value;
  std::string doc;
  std::optional<double> min, max;    // numbers: inclusive bounds
  std::vector<std::string> choices;  // strings: allowed values (empty = any)
};

class Schema {
 public:
  // Add a key. Bounds and choices are optional; the default's type is the key's type.
  Schema& add(const std::string& key, Value default_value, const std::string& doc, std::optional<double> min = {},
              std::optional<double> max = {}, std::vector<std::string> choices = {});
  const KeySpec* find(const std::string& key) const;
  const std::vector<KeySpec>& keys() const { return keys_; }
  std::string closest(const std::string& key) const;  // best guess for a misspelt key ("" if none)

 private:
  std::vector<KeySpec> keys_;
  std::map<std::string, size_t> index_;
};

class Config {
 public:
  int64_t integer(const std::string& key) const;
  double real(const std::string& key) const;  // integers are accepted where reals are asked
  bool boolean(const std::string& key) const;
  const std::string& str(const std::string& key) const;
  bool has(const std::string& key) const { return values_.count(key) != 0; }

  // The resolved configuration as TOML text (every key, grouped by section): goes into the trace,
  // and reads back to the same Config.
  std::string to_toml() const;

  void set(const std::string& key, Value v) { values_[key] = std::move(v); }
  const std::map<std::string, Value>& values() const { return values_; }

 private:
  std::map<std::string, Value> values_;
};

// Resolve: defaults from the schema, then the TOML file (if path is non-empty), then overrides of
// the form "section.key=value" (a leading "--" is accepted). Throws frugal::Error naming the key.
Config resolve_config(const Schema& schema, const std::string& path, const std::vector<std::string>& overrides);

// Parse one override value according to a key's type ("true", "3", "1e-3", "text").
Value parse_value(const KeySpec& spec, const std::string& text, const std::string& source);

// Human-readable schema for --help.
std::string describe_schema(const Schema& schema);

// Type name of a value ("integer", "float", "boolean", "string").
const char* type_name(const Value& v);

}  // namespace frugal
