#pragma once
// Checkpoint state files: named binary sections plus a checksum, one file per rank (ranks may own
// different state: DiLoCo workers, error-feedback buffers). Loading checks every name and size, so
// a truncated, corrupted or mismatched file is an error that says which section is wrong.
#include <cstdint>
#include <functional>
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
  size_t size(const std::string& name) const { return section(name).size(); }
  int64_t get_i64(const std::string& name) const;
  double get_f64(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  const std::vector<char>& section(const std::string& name) const;
  std::string path_;
  std::map<std::string, std::vector<char>> sections_;
};

// One description of a component's checkpointed state, walked in either direction: saving copies
// each field into a StateWriter, loading copies it back from a StateReader (name and size must
// match). A component lists its fields once, in one function, so a field cannot be saved and
// forgotten on load; the file's section order is the order of the calls.
class StateFields {
 public:
  explicit StateFields(StateWriter& out) : out_(&out) {}
  explicit StateFields(const StateReader& in) : in_(&in) {}
  bool loading() const { return in_ != nullptr; }

  // A buffer whose size the component already knows (it must match the saved one on load).
  template <typename T>
  void field(const std::string& name, std::vector<T>& v) {
    if (out_) out_->put(name, v);
    else in_->get(name, v);
  }
  void field(const std::string& name, int64_t& v) { scalar(name, &v, sizeof v); }
  void field(const std::string& name, double& v) { scalar(name, &v, sizeof v); }
  // State held in another form: saving stores pack(); loading hands the stored elements to unpack
  // (which checks their count).
  template <typename T>
  void packed(const std::string& name, const std::function<std::vector<T>()>& pack,
              const std::function<void(const std::vector<T>&)>& unpack) {
    if (out_) {
      out_->put(name, pack());
      return;
    }
    std::vector<T> v(in_->size(name) / sizeof(T));
    in_->get(name, v);
    unpack(v);
  }
  // A value the loading run must share with the saving one (the method, the rank count): saved,
  // and on load compared, with an error that names both values.
  void expect(const std::string& name, const std::string& value, const char* what);
  void expect(const std::string& name, int64_t value, const char* what);
  // Called on load only, after the fields above it are restored (e.g. to drop a derived cache).
  void after_load(const std::function<void()>& f) {
    if (in_) f();
  }

 private:
  void scalar(const std::string& name, void* v, size_t n) {
    if (out_) out_->put_bytes(name, v, n);
    else in_->get_bytes(name, v, n);
  }
  StateWriter* out_ = nullptr;
  const StateReader* in_ = nullptr;
};

}  // namespace frugal
