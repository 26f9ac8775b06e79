#include "trace/trace.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace frugal {

namespace {

// HDF5 prints its own error stack by default; we report errors ourselves.
void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

hid_t check(hid_t id, const char* what, const std::string& path) {
  FRUGAL_CHECK(id >= 0, "HDF5: ", what, " failed for '", path, "'");
  return id;
}
void check_status(herr_t rc, const char* what, const std::string& path) {
  FRUGAL_CHECK(rc >= 0, "HDF5: ", what, " failed for '", path, "'");
}

hid_t string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

hid_t fixed_string_type(size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, n);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  return t;
}

void write_attr(hid_t file, const std::string& name, hid_t type, const void* value, const std::string& path) {
  if (H5Aexists(file, name.c_str()) > 0) H5Adelete(file, name.c_str());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = check(H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "attribute create", path);
  check_status(H5Awrite(attr, type, value), "attribute write", path);
  H5Aclose(attr);
  H5Sclose(space);
}

hid_t create_extendible(hid_t group, const std::string& name, hid_t type, hsize_t chunk, const std::string& path) {
  hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunks[1] = {chunk};
  hid_t space = H5Screate_simple(1, dims, maxdims);
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(plist, 1, chunks);
  hid_t ds = check(H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, plist, H5P_DEFAULT), "dataset create", path);
  H5Pclose(plist);
  H5Sclose(space);
  return ds;
}

hsize_t length(hid_t ds) {
  hid_t space = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  H5Sclose(space);
  return n;
}

void append_rows(hid_t ds, hid_t mem_type, const void* data, hsize_t n, const std::string& path) {
  if (n == 0) return;
  const hsize_t old = length(ds);
  hsize_t total[1] = {old + n}, start[1] = {old}, count[1] = {n};
  check_status(H5Dset_extent(ds, total), "extend", path);
  hid_t fspace = H5Dget_space(ds);
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mspace = H5Screate_simple(1, count, nullptr);
  check_status(H5Dwrite(ds, mem_type, mspace, fspace, H5P_DEFAULT, data), "append", path);
  H5Sclose(mspace);
  H5Sclose(fspace);
}

// Number of leading rows whose step is <= `step` (rows are in step order).
hsize_t rows_upto(const std::vector<int64_t>& steps, int64_t step) {
  return static_cast<hsize_t>(std::upper_bound(steps.begin(), steps.end(), step) - steps.begin());
}

std::vector<int64_t> read_int_column(hid_t ds, hid_t mem_type) {
  std::vector<int64_t> v(length(ds));
  if (!v.empty()) H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  return v;
}

}  // namespace

TraceWriter::TraceWriter(const std::string& path, const std::vector<Network>& networks, int64_t resume_step)
    : path_(path), networks_(networks) {
  quiet_hdf5();
  if (resume_step >= 0) {
    file_ = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    FRUGAL_CHECK(file_ >= 0, "cannot reopen trace '", path, "' to resume (missing or not HDF5)");
  } else {
    // Exclusive: an existing file is never truncated here (the runner removes a trace it was told
    // to overwrite, under the run folder's lock); a race that slips past that fails instead.
    file_ = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    FRUGAL_CHECK(file_ >= 0, "cannot create trace '", path, "': it exists already or its folder is not writable");
  }
  for (const char* g : {"steps", "eval", "comm", "ranks"}) {
    hid_t id = H5Lexists(file_, g, H5P_DEFAULT) > 0 ? H5Gopen2(file_, g, H5P_DEFAULT)
                                                     : H5Gcreate2(file_, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    groups_[g] = check(id, "group", path);
  }
  // comm/calls: a packed compound row per collective.
  struct Field { std::string name; hid_t type; };
  std::vector<Field> fields = {{"step", H5T_NATIVE_INT64}, {"op", fixed_string_type(16)},
                               {"tag", fixed_string_type(32)}, {"control", H5T_NATIVE_UINT8},
                               {"payload_bytes", H5T_NATIVE_INT64}, {"wire_bytes", H5T_NATIVE_INT64},
                               {"time_s", H5T_NATIVE_DOUBLE}, {"algbw_GBps", H5T_NATIVE_DOUBLE},
                               {"busbw_GBps", H5T_NATIVE_DOUBLE}};
  for (const auto& n : networks_) fields.push_back({"net_time_" + n.name, H5T_NATIVE_DOUBLE});
  for (const auto& f : fields) call_row_bytes_ += H5Tget_size(f.type);
  calls_type_ = H5Tcreate(H5T_COMPOUND, call_row_bytes_);
  size_t off = 0;
  for (const auto& f : fields) {
    H5Tinsert(calls_type_, f.name.c_str(), off, f.type);
    off += H5Tget_size(f.type);
  }
  H5Tclose(fields[1].type);
  H5Tclose(fields[2].type);
  hid_t comm = groups_["comm"];
  calls_dataset_ = H5Lexists(comm, "calls", H5P_DEFAULT) > 0 ? H5Dopen2(comm, "calls", H5P_DEFAULT)
                                                               : create_extendible(comm, "calls", calls_type_, 1024, path);
  check(calls_dataset_, "comm/calls", path);
  if (resume_step >= 0) truncate_after(resume_step);
}

void TraceWriter::truncate_after(int64_t step) {
  for (const char* g : {"steps", "eval"}) {
    hid_t group = groups_[g];
    if (H5Lexists(group, "step", H5P_DEFAULT) <= 0) continue;
    hid_t sds = H5Dopen2(group, "step", H5P_DEFAULT);
    const hsize_t keep = rows_upto(read_int_column(sds, H5T_NATIVE_INT64), step);
    H5Dclose(sds);
    H5G_info_t info;
    H5Gget_info(group, &info);
    for (hsize_t i = 0; i < info.nlinks; i++) {
      char name[256];
      H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
      hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
      hsize_t dims[1] = {std::min(keep, length(ds))};
      H5Dset_extent(ds, dims);
      H5Dclose(ds);
    }
  }
  hid_t step_only = H5Tcreate(H5T_COMPOUND, sizeof(int64_t));
  H5Tinsert(step_only, "step", 0, H5T_NATIVE_INT64);
  hsize_t dims[1] = {rows_upto(read_int_column(calls_dataset_, step_only), step)};
  H5Tclose(step_only);
  H5Dset_extent(calls_dataset_, dims);
  H5Fflush(file_, H5F_SCOPE_GLOBAL);
}

TraceWriter::~TraceWriter() {
  for (auto& [g, cols] : tables_)
    for (auto& [n, c] : cols)
      if (c.dataset >= 0) H5Dclose(c.dataset);
  if (calls_dataset_ >= 0) H5Dclose(calls_dataset_);
  if (calls_type_ >= 0) H5Tclose(calls_type_);
  for (auto& [n, g] : groups_) H5Gclose(g);
  if (file_ >= 0) H5Fclose(file_);
}

void TraceWriter::set_attr(const std::string& name, const std::string& value) {
  hid_t t = string_type();
  const char* p = value.c_str();
  write_attr(file_, name, t, &p, path_);
  H5Tclose(t);
}
void TraceWriter::set_attr(const std::string& name, int64_t value) { write_attr(file_, name, H5T_NATIVE_INT64, &value, path_); }
void TraceWriter::set_attr(const std::string& name, double value) { write_attr(file_, name, H5T_NATIVE_DOUBLE, &value, path_); }

TraceWriter::Column& TraceWriter::column(const std::string& group, const std::string& name, bool is_int) {
  auto& cols = tables_[group];
  auto it = cols.find(name);
  if (it != cols.end()) return it->second;
  Column c;
  c.is_int = is_int;
  hid_t g = groups_.at(group);
  const hid_t type = is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  c.dataset = H5Lexists(g, name.c_str(), H5P_DEFAULT) > 0 ? H5Dopen2(g, name.c_str(), H5P_DEFAULT)
                                                           : create_extendible(g, name, type, 256, path_);
  check(c.dataset, "dataset", path_);
  return cols.emplace(name, std::move(c)).first->second;
}

void TraceWriter::declare(const std::string& group, const Row& columns) {
  for (const auto& [name, cell] : columns) column(group, name, cell.index() == 0);
}

void TraceWriter::append(const std::string& group, const Row& row) {
  for (const auto& [name, cell] : row) {
    Column& c = column(group, name, cell.index() == 0);
    if (c.is_int) c.ints.push_back(cell.index() == 0 ? std::get<int64_t>(cell) : static_cast<int64_t>(std::get<double>(cell)));
    else c.reals.push_back(cell.index() == 1 ? std::get<double>(cell) : static_cast<double>(std::get<int64_t>(cell)));
  }
}

void TraceWriter::append_calls(const std::vector<CallRecord>& calls, int world_size) {
  const size_t base = pending_calls_.size();
  pending_calls_.resize(base + calls.size() * call_row_bytes_, 0);
  char* p = pending_calls_.data() + base;
  for (const CallRecord& r : calls) {
    char* q = p;
    auto put = [&](const void* v, size_t n) { std::memcpy(q, v, n); q += n; };
    char op[16] = {};
    std::strncpy(op, op_name(r.op), sizeof op - 1);
    const double algbw = r.time_s > 0 ? static_cast<double>(r.payload_bytes) / r.time_s / 1e9 : 0.0;
    const double busbw = algbw * busbw_factor(r.op, world_size);
    put(&r.step, 8);
    put(op, 16);
    put(r.tag, 32);
    put(&r.control, 1);
    put(&r.payload_bytes, 8);
    put(&r.wire_bytes, 8);
    put(&r.time_s, 8);
    put(&algbw, 8);
    put(&busbw, 8);
    for (const auto& n : networks_) {
      const double t = modelled_time(r.op, r.payload_bytes, world_size, n);
      put(&t, 8);
    }
    p += call_row_bytes_;
  }
  pending_call_rows_ += calls.size();
}

void TraceWriter::set_rank_totals(const RankTotals& totals) {
  ranks_ = totals;
  ranks_dirty_ = true;
}

void TraceWriter::flush() {
  for (auto& [g, cols] : tables_) {
    for (auto& [name, c] : cols) {
      if (c.is_int) append_rows(c.dataset, H5T_NATIVE_INT64, c.ints.data(), c.ints.size(), path_), c.ints.clear();
      else append_rows(c.dataset, H5T_NATIVE_DOUBLE, c.reals.data(), c.reals.size(), path_), c.reals.clear();
    }
  }
  append_rows(calls_dataset_, calls_type_, pending_calls_.data(), pending_call_rows_, path_);
  pending_calls_.clear();
  pending_call_rows_ = 0;
  if (ranks_dirty_) {
    hid_t g = groups_["ranks"];
    auto write = [&](const char* name, hid_t type, const void* data, size_t n) {
      if (H5Lexists(g, name, H5P_DEFAULT) > 0) H5Ldelete(g, name, H5P_DEFAULT);
      hsize_t dims[1] = {n};
      hid_t space = H5Screate_simple(1, dims, nullptr);
      hid_t ds = check(H5Dcreate2(g, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "ranks dataset", path_);
      H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
      H5Dclose(ds);
      H5Sclose(space);
    };
    write("compute_time", H5T_NATIVE_DOUBLE, ranks_.compute_time.data(), ranks_.compute_time.size());
    write("comm_time", H5T_NATIVE_DOUBLE, ranks_.comm_time.data(), ranks_.comm_time.size());
    write("bytes_sent", H5T_NATIVE_INT64, ranks_.bytes_sent.data(), ranks_.bytes_sent.size());
    write("calls", H5T_NATIVE_INT64, ranks_.calls.data(), ranks_.calls.size());
    ranks_dirty_ = false;
  }
  check_status(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush", path_);
}

// ---- reader ---------------------------------------------------------------------------------

TraceReader::TraceReader(const std::string& path) : path_(path) {
  quiet_hdf5();
  FRUGAL_CHECK(H5Fis_hdf5(path.c_str()) > 0, "'", path, "' is missing or not an HDF5 trace");
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  FRUGAL_CHECK(file_ >= 0, "cannot open trace '", path, "'");
}
TraceReader::~TraceReader() {
  if (file_ >= 0) H5Fclose(file_);
}

bool TraceReader::has_attr(const std::string& name) const { return H5Aexists(file_, name.c_str()) > 0; }

std::string TraceReader::attr_string(const std::string& name) const {
  FRUGAL_CHECK(has_attr(name), "trace '", path_, "' has no attribute '", name, "'");
  hid_t a = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
  hid_t t = string_type();
  char* s = nullptr;
  const herr_t rc = H5Aread(a, t, &s);
  std::string out = rc >= 0 && s ? s : "";
  if (s) H5free_memory(s);
  H5Tclose(t);
  H5Aclose(a);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': attribute '", name, "' is not a string");
  return out;
}

int64_t TraceReader::attr_int(const std::string& name) const {
  FRUGAL_CHECK(has_attr(name), "trace '", path_, "' has no attribute '", name, "'");
  int64_t v = 0;
  hid_t a = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
  const herr_t rc = H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': attribute '", name, "' is not numeric");
  return v;
}

double TraceReader::attr_double(const std::string& name) const {
  FRUGAL_CHECK(has_attr(name), "trace '", path_, "' has no attribute '", name, "'");
  double v = 0;
  hid_t a = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
  const herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': attribute '", name, "' is not numeric");
  return v;
}

std::vector<std::string> TraceReader::attr_names() const {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t idx = 0;
  H5Aiterate2(file_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names);
  return names;
}

bool TraceReader::has_dataset(const std::string& path) const {
  const auto slash = path.find('/');
  if (slash != std::string::npos && H5Lexists(file_, path.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(file_, path.c_str(), H5P_DEFAULT) > 0;
}

std::vector<double> TraceReader::read_doubles(const std::string& path) const {
  FRUGAL_CHECK(has_dataset(path), "trace '", path_, "' has no dataset '", path, "'");
  hid_t ds = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
  std::vector<double> v(length(ds));
  herr_t rc = v.empty() ? 0 : H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(ds);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': dataset '", path, "' is not numeric");
  return v;
}

std::vector<std::string> TraceReader::dataset_names(const std::string& group) const {
  std::vector<std::string> names;
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) <= 0) return names;
  hid_t g = H5Gopen2(file_, group.c_str(), H5P_DEFAULT);
  H5G_info_t info;
  H5Gget_info(g, &info);
  for (hsize_t i = 0; i < info.nlinks; i++) {
    char name[256];
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    names.emplace_back(name);
  }
  H5Gclose(g);
  return names;
}

int64_t TraceReader::num_call_records() const {
  if (!has_dataset("comm/calls")) return 0;
  hid_t ds = H5Dopen2(file_, "comm/calls", H5P_DEFAULT);
  const auto n = static_cast<int64_t>(length(ds));
  H5Dclose(ds);
  return n;
}

std::string trace_status(const std::string& path) {
  try {
    return TraceReader(path).attr_string("status");
  } catch (const std::exception&) {
    return "";
  }
}

std::vector<double> TraceReader::read_call_field(const std::string& field) const {
  if (!has_dataset("comm/calls")) return {};
  hid_t ds = H5Dopen2(file_, "comm/calls", H5P_DEFAULT);
  std::vector<double> v(length(ds));
  hid_t mem = H5Tcreate(H5T_COMPOUND, sizeof(double));  // just this field, converted to double
  H5Tinsert(mem, field.c_str(), 0, H5T_NATIVE_DOUBLE);
  herr_t rc = v.empty() ? 0 : H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Tclose(mem);
  H5Dclose(ds);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': comm/calls has no numeric field '", field, "'");
  return v;
}

std::vector<std::string> TraceReader::read_call_strings(const std::string& field) const {
  if (!has_dataset("comm/calls")) return {};
  hid_t ds = H5Dopen2(file_, "comm/calls", H5P_DEFAULT);
  const size_t n = length(ds), width = 64;
  std::vector<char> buf(n * width, '\0');
  hid_t str = fixed_string_type(width);
  hid_t mem = H5Tcreate(H5T_COMPOUND, width);
  H5Tinsert(mem, field.c_str(), 0, str);
  herr_t rc = n == 0 ? 0 : H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  H5Tclose(mem);
  H5Tclose(str);
  H5Dclose(ds);
  FRUGAL_CHECK(rc >= 0, "trace '", path_, "': comm/calls has no string field '", field, "'");
  std::vector<std::string> out;
  for (size_t i = 0; i < n; i++) out.emplace_back(buf.data() + i * width);
  return out;
}

}  // namespace frugal
