#include "core/state.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"

namespace frugal {

namespace {
constexpr char kMagic[8] = {'F', 'R', 'U', 'G', 'A', 'L', 'S', 'T'};
constexpr uint32_t kVersion = 1;

uint64_t fnv1a(const char* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; i++) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  return h;
}
}  // namespace

void StateWriter::put_bytes(const std::string& name, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  sections_.emplace_back(name, std::vector<char>(p, p + n));
}

void StateWriter::save(const std::string& path) const {
  std::vector<char> buf(kMagic, kMagic + 8);
  auto put = [&](const void* v, size_t n) { buf.insert(buf.end(), static_cast<const char*>(v), static_cast<const char*>(v) + n); };
  put(&kVersion, 4);
  const uint64_t count = sections_.size();
  put(&count, 8);
  for (const auto& [name, bytes] : sections_) {
    const uint32_t len = static_cast<uint32_t>(name.size());
    const uint64_t size = bytes.size();
    put(&len, 4);
    put(name.data(), len);
    put(&size, 8);
    put(bytes.data(), bytes.size());
  }
  const uint64_t sum = fnv1a(buf.data(), buf.size());
  put(&sum, 8);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FRUGAL_CHECK(out, "cannot write checkpoint '", tmp, "'");
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    FRUGAL_CHECK(out.good(), "writing checkpoint '", tmp, "' failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

StateReader::StateReader(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  FRUGAL_CHECK(in, "cannot open checkpoint '", path, "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FRUGAL_CHECK(buf.size() >= 28 && std::memcmp(buf.data(), kMagic, 8) == 0, "checkpoint '", path,
               "' is not a frugal state file (bad magic or too short)");
  uint64_t stored = 0;
  std::memcpy(&stored, buf.data() + buf.size() - 8, 8);
  FRUGAL_CHECK(stored == fnv1a(buf.data(), buf.size() - 8), "checkpoint '", path, "' is corrupted (checksum mismatch)");
  size_t pos = 8;
  const size_t end = buf.size() - 8;
  auto take = [&](void* out, size_t n) {
    FRUGAL_CHECK(pos + n <= end, "checkpoint '", path, "' is truncated");
    std::memcpy(out, buf.data() + pos, n);
    pos += n;
  };
  uint32_t version = 0;
  take(&version, 4);
  FRUGAL_CHECK(version == kVersion, "checkpoint '", path, "' has version ", version, ", expected ", kVersion);
  uint64_t count = 0;
  take(&count, 8);
  for (uint64_t i = 0; i < count; i++) {
    uint32_t len = 0;
    take(&len, 4);
    std::string name(len, '\0');
    take(name.data(), len);
    uint64_t size = 0;
    take(&size, 8);
    FRUGAL_CHECK(pos + size <= end, "checkpoint '", path, "' is truncated in section '", name, "'");
    sections_[name].assign(buf.data() + pos, buf.data() + pos + size);
    pos += size;
  }
}

const std::vector<char>& StateReader::section(const std::string& name) const {
  auto it = sections_.find(name);
  FRUGAL_CHECK(it != sections_.end(), "checkpoint '", path_, "' has no section '", name, "' (written by another method?)");
  return it->second;
}

void StateReader::get_bytes(const std::string& name, void* out, size_t n) const {
  const auto& s = section(name);
  FRUGAL_CHECK(s.size() == n, "checkpoint '", path_, "' section '", name, "' holds ", s.size(), " bytes, expected ", n,
               " (model or config differs from the run that wrote it?)");
  std::memcpy(out, s.data(), n);
}
int64_t StateReader::get_i64(const std::string& name) const {
  int64_t v = 0;
  get_bytes(name, &v, sizeof v);
  return v;
}
double StateReader::get_f64(const std::string& name) const {
  double v = 0;
  get_bytes(name, &v, sizeof v);
  return v;
}
std::string StateReader::get_string(const std::string& name) const {
  const auto& s = section(name);
  return std::string(s.begin(), s.end());
}

void StateFields::expect(const std::string& name, const std::string& value, const char* what) {
  if (out_) {
    out_->put_string(name, value);
    return;
  }
  const std::string saved = in_->get_string(name);
  FRUGAL_CHECK(saved == value, "checkpoint '", in_->path(), "' was written with ", what, " '", saved, "'; this run has '",
               value, "' (resume with the same ", what, ")");
}

void StateFields::expect(const std::string& name, int64_t value, const char* what) {
  if (out_) {
    out_->put_i64(name, value);
    return;
  }
  const int64_t saved = in_->get_i64(name);
  FRUGAL_CHECK(saved == value, "checkpoint '", in_->path(), "' was written with ", what, " ", saved, "; this run has ",
               value, " (resume with the same ", what, ")");
}

}  // namespace frugal
