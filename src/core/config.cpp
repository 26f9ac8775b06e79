#include "core/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.hpp"

namespace frugal {

const char* type_name(const Value& v) {
  switch (v.index()) {
    case 0: return "integer";
    case 1: return "float";
    case 2: return "boolean";
    default: return "string";
  }
}

Schema& Schema::add(const std::string& key, Value default_value, const std::string& doc, std::optional<double> min,
                    std::optional<double> max, std::vector<std::string> choices) {
  FRUGAL_CHECK(key.find('.') != std::string::npos, "config key '", key, "' must be section.name");
  FRUGAL_CHECK(!index_.count(key), "config key '", key, "' declared twice");
  index_[key] = keys_.size();
  keys_.push_back({key, std::move(default_value), doc, min, max, std::move(choices)});
  return *this;
}

const KeySpec* Schema::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &keys_[it->second];
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string format_value(const Value& v) {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          os << (x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << toml::value<std::string>(x);  // quoted and escaped as TOML
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[64];
          auto res = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip form
          std::string s(buf, res.ptr);
          if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
          os << s;
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

// Check a value against its spec: type (an integer may stand for a float), bounds, choices.
Value check_value(const KeySpec& spec, Value v, const std::string& source) {
  if (v.index() != spec.default_value.index()) {
    if (v.index() == 0 && spec.default_value.index() == 1) {
      v = static_cast<double>(std::get<int64_t>(v));
    } else {
      fail("config key '", spec.key, "' (", source, ") must be of type ", type_name(spec.default_value), ", got ",
           type_name(v));
    }
  }
  if (v.index() <= 1) {
    const double x = v.index() == 0 ? static_cast<double>(std::get<int64_t>(v)) : std::get<double>(v);
    FRUGAL_CHECK(std::isfinite(x), "config key '", spec.key, "' (", source, ") must be finite");
    FRUGAL_CHECK(!spec.min || x >= *spec.min, "config key '", spec.key, "' (", source, ") = ", format_value(v),
                 " is below its minimum ", *spec.min);
    FRUGAL_CHECK(!spec.max || x <= *spec.max, "config key '", spec.key, "' (", source, ") = ", format_value(v),
                 " is above its maximum ", *spec.max);
  }
  if (v.index() == 3 && !spec.choices.empty()) {
    const auto& s = std::get<std::string>(v);
    if (std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
      std::string list;
      for (const auto& c : spec.choices) list += (list.empty() ? "" : ", ") + c;
      fail("config key '", spec.key, "' (", source, ") = \"", s, "\" is not one of: ", list);
    }
  }
  return v;
}

const KeySpec& lookup(const Schema& schema, const std::string& key, const std::string& source) {
  const KeySpec* spec = schema.find(key);
  if (!spec) {
    const std::string guess = schema.closest(key);
    fail("unknown config key '", key, "' (", source, ")", guess.empty() ? "" : "; did you mean '" + guess + "'?");
  }
  return *spec;
}

void flatten(const toml::table& table, const std::string& prefix, const Schema& schema, const std::string& path,
             Config& config) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    const std::string source = path + ":" + std::to_string(node.source().begin.line);
    if (const auto* sub = node.as_table()) {
      flatten(*sub, key, schema, path, config);
      continue;
    }
    const KeySpec& spec = lookup(schema, key, source);
    Value v;
    if (auto i = node.value_exact<int64_t>()) v = *i;
    else if (auto d = node.value_exact<double>()) v = *d;
    else if (auto b = node.value_exact<bool>()) v = *b;
    else if (auto s = node.value_exact<std::string>()) v = *s;
    else fail("config key '", key, "' (", source, ") has an unsupported TOML type (arrays and dates are not used)");
    config.set(key, check_value(spec, std::move(v), source));
  }
}

}  // namespace

std::string Schema::closest(const std::string& key) const {
  std::string best;
  size_t best_d = std::max<size_t>(3, key.size() / 3) + 1;
  for (const auto& k : keys_) {
    const size_t d = edit_distance(key, k.key);
    if (d < best_d) best_d = d, best = k.key;
  }
  return best;
}

Value parse_value(const KeySpec& spec, const std::string& text, const std::string& source) {
  auto bad = [&]() -> Value {
    fail("config key '", spec.key, "' (", source, ") expects type ", type_name(spec.default_value), ", got '", text, "'");
  };
  Value v;
  switch (spec.default_value.index()) {
    case 0: {
      int64_t x = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
      if (ec != std::errc() || p != text.data() + text.size()) return bad();
      v = x;
      break;
    }
    case 1: {
      double x = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
      if (ec != std::errc() || p != text.data() + text.size()) return bad();
      v = x;
      break;
    }
    case 2:
      if (text == "true" || text == "1") v = true;
      else if (text == "false" || text == "0") v = false;
      else return bad();
      break;
    default: {
      std::string s = text;
      if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
      v = s;
    }
  }
  return check_value(spec, std::move(v), source);
}

Config resolve_config(const Schema& schema, const std::string& path, const std::vector<std::string>& overrides) {
  Config config;
  for (const auto& spec : schema.keys()) config.set(spec.key, spec.default_value);
  if (!path.empty()) {
    toml::table table;
    try {
      table = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      const auto& src = e.source();
      if (e.description().find("File could not be opened") != std::string_view::npos)
        fail("config file '", path, "' could not be opened");
      fail("config file '", path, "' line ", src.begin.line, ": ", e.description());
    }
    flatten(table, "", schema, path, config);
  }
  for (std::string o : overrides) {
    if (o.rfind("--", 0) == 0) o = o.substr(2);
    const auto eq = o.find('=');
    FRUGAL_CHECK(eq != std::string::npos, "override '", o, "' must look like --section.key=value");
    const std::string key = o.substr(0, eq);
    const KeySpec& spec = lookup(schema, key, "command line");
    config.set(key, parse_value(spec, o.substr(eq + 1), "command line"));
  }
  return config;
}

int64_t Config::integer(const std::string& key) const {
  auto it = values_.find(key);
  FRUGAL_CHECK(it != values_.end() && it->second.index() == 0, "internal: config key '", key, "' is not an integer");
  return std::get<int64_t>(it->second);
}
double Config::real(const std::string& key) const {
  auto it = values_.find(key);
  FRUGAL_CHECK(it != values_.end() && it->second.index() <= 1, "internal: config key '", key, "' is not a number");
  return it->second.index() == 0 ? static_cast<double>(std::get<int64_t>(it->second)) : std::get<double>(it->second);
}
bool Config::boolean(const std::string& key) const {
  auto it = values_.find(key);
  FRUGAL_CHECK(it != values_.end() && it->second.index() == 2, "internal: config key '", key, "' is not a boolean");
  return std::get<bool>(it->second);
}
const std::string& Config::str(const std::string& key) const {
  auto it = values_.find(key);
  FRUGAL_CHECK(it != values_.end() && it->second.index() == 3, "internal: config key '", key, "' is not a string");
  return std::get<std::string>(it->second);
}

std::string Config::to_toml() const {
  std::ostringstream os;
  std::string section;
  for (const auto& [key, v] : values_) {  // std::map: sorted, so sections come out grouped
    const auto dot = key.find('.');
    const std::string s = key.substr(0, dot);
    if (s != section) {
      os << (section.empty() ? "" : "\n") << "[" << s << "]\n";
      section = s;
    }
    os << key.substr(dot + 1) << " = " << format_value(v) << "\n";
  }
  return os.str();
}

std::string describe_schema(const Schema& schema) {
  std::ostringstream os;
  std::string section;
  for (const auto& k : schema.keys()) {
    const auto dot = k.key.find('.');
    const std::string s = k.key.substr(0, dot);
    if (s != section) {
      os << "\n  [" << s << "]\n";
      section = s;
    }
    os << "    " << k.key << " = " << format_value(k.default_value) << "  (" << type_name(k.default_value);
    if (k.min) os << ", >= " << *k.min;
    if (k.max) os << ", <= " << *k.max;
    if (!k.choices.empty()) {
      os << ", one of";
      for (const auto& c : k.choices) os << " " << c;
    }
    os << ")\n        " << k.doc << "\n";
  }
  return os.str();
}

}  // namespace frugal
