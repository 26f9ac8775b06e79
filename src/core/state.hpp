#pragma once
// Checkpoint state files: named binary sections plus a checksum, one file per rank (ranks may own
// different state: DiLoCo workers, error-feedback buffers). Loading checks every name and size, so
// a truncated, corrupted or mismatched file is an error that says which section is wrong.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace frugal {

class StateWriter {
 public:
  void put_bytes(const std::string& name, const void* data, size_t n);
  template <typename T>
  void put(const std::string& name, std::span<const T> v) { put_bytes(name, v.data(), v.size_bytes()); }
  template <typename T>
  void put(const std::string& name, const std::vector<T>& v) { put_bytes(name, v.data(), v.size() * sizeof(T)); }
  void put_i64(const std::string& name, int64_t v) { put_bytes(name, &v, sizeof v); }
  void put_f64(const std::string& name, double v) { put_bytes(name, &v, sizeof v); }
  void put_string(const std::string& name, const std::string& s) { put_bytes(name, s.data(), s.size()); }
  // Writes atomically (temporary file + rename).
  void save(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, std::vector<char>>> sections_;
};

class StateReader {
 public:
  explicit StateReader(const std::string& path);
  bool has(const std::string& name) const { return sections_.count(name) != 0; }
  // Copies section `name` into out; its size must match exactly.
  void get_bytes(const std::string& name, void* out, size_t n) const;
  template <typename T>
  void get(const std::string& name, std::span<T> out) const { get_bytes(name, out.data(), out.size_bytes()); }
  template <typename T>
  void get(const std::string& name, std::vector<T>& out) const { get_bytes(name, out.data(), out.size() * sizeof(T)); }
  int64_t get_i64(const std::string& name) const;
  double get_f64(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  const std::vector<char>& section(const std::string& name) const;
  std::string path_;
  std::map<std::string, std::vector<char>> sections_;
};

}  // namespace frugal
