#include "extrapolate/trajectory.hpp"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "core/error.hpp"

namespace frugal {

std::vector<NamedTensor> gpt2_named_tensors(const GPT2Config& config) {
  const ParamLayout layout = gpt2_layout(config);
  std::vector<NamedTensor> out;
  for (const TensorSpec& t : layout.tensors) {
    const bool norm = t.name.rfind("ln", 0) == 0;
    if (!t.layer_stacked) {
      out.push_back({t.name, t.shape, t.offset, t.numel, norm});
      continue;
    }
    const std::vector<int64_t> shape(t.shape.begin() + 1, t.shape.end());
    const size_t per_layer = t.numel / size_t(t.shape[0]);
    for (int64_t l = 0; l < t.shape[0]; l++) {
      std::string name = "h";  // h<l>.<name>, built by appends (GCC 12 warns falsely on a chain of +)
      name += std::to_string(l);
      name += '.';
      name += t.name;
      out.push_back({name, shape, t.offset + size_t(l) * per_layer, per_layer, norm});
    }
  }
  return out;
}

std::vector<float> trajectory_params(const Trajectory& t, int checkpoint) {
  FRUGAL_CHECK(checkpoint >= 0 && checkpoint < t.checkpoints(), "trajectory '", t.path, "' has no checkpoint ", checkpoint);
  std::vector<float> params(gpt2_layout(t.model).total);
  for (const TrajectoryTensor& x : t.tensors)
    std::copy(x.at(checkpoint), x.at(checkpoint) + x.spec.numel, params.begin() + long(x.spec.offset));
  return params;
}

namespace {

constexpr const char* kFormat = "frugal-trajectory";

// Owns an HDF5 handle: closed on every path out, errors included.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

hid_t checked(hid_t id, const std::string& what, const std::string& path) {
  FRUGAL_CHECK(id >= 0, "trajectory '", path, "': HDF5 could not ", what);
  return id;
}

void write_int_attr(hid_t file, const char* name, int64_t value) {
  if (H5Aexists(file, name) > 0) H5Adelete(file, name);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(file, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(attr, H5T_NATIVE_INT64, &value);
}

int64_t read_int_attr(hid_t file, const char* name, const std::string& path) {
  FRUGAL_CHECK(H5Aexists(file, name) > 0, "trajectory '", path, "' has no root attribute '", name,
               "': not a trajectory file written by frugal (grpo.trajectory_every)");
  Handle attr(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  int64_t v = 0;
  H5Aread(attr, H5T_NATIVE_INT64, &v);
  return v;
}

// Row `index` of an extendible dataset (K, shape...) set to `data`; the dataset is created at
// index 0 and cut to index + 1 rows.
void write_row(hid_t file, const std::string& name, const std::vector<int64_t>& shape, hid_t type, const void* data,
               int index, const std::string& path) {
  const int rank = static_cast<int>(shape.size()) + 1;
  const size_t axes = static_cast<size_t>(rank);
  std::vector<hsize_t> dims(axes), start(axes, 0), count(axes);
  for (int d = 1; d < rank; d++) dims[size_t(d)] = count[size_t(d)] = hsize_t(shape[size_t(d - 1)]);
  hid_t ds;
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) {
    ds = checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "open dataset " + name, path);
  } else {
    FRUGAL_CHECK(index == 0, "trajectory '", path, "' has no dataset '", name, "' to add checkpoint ", index, " to");
    std::vector<hsize_t> zero = dims, maxdims = dims, chunk = count;
    zero[0] = 0, maxdims[0] = H5S_UNLIMITED, chunk[0] = 1;
    Handle space(H5Screate_simple(rank, zero.data(), maxdims.data()), H5Sclose);
    Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(plist, rank, chunk.data());
    ds = checked(H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, plist, H5P_DEFAULT), "create dataset " + name,
                 path);
  }
  Handle dataset(ds, H5Dclose);
  dims[0] = hsize_t(index) + 1, start[0] = hsize_t(index), count[0] = 1;
  FRUGAL_CHECK(H5Dset_extent(dataset, dims.data()) >= 0, "trajectory '", path, "': could not extend ", name);
  Handle fspace(H5Dget_space(dataset), H5Sclose);
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle mspace(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
  FRUGAL_CHECK(H5Dwrite(dataset, type, mspace, fspace, H5P_DEFAULT, data) >= 0, "trajectory '", path, "': could not write ",
               name, " of checkpoint ", index);
}

// The first `rows` rows of dataset `name`, which must be (>= rows, shape...).
void read_rows(hid_t file, const std::string& name, const std::vector<int64_t>& shape, hid_t type, void* out, hsize_t rows,
               const std::string& path) {
  FRUGAL_CHECK(H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0, "trajectory '", path, "' has no tensor '", name,
               "' (the model of its attributes has one)");
  Handle ds(checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "open " + name, path), H5Dclose);
  Handle fspace(H5Dget_space(ds), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(fspace);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(fspace, dims.data(), nullptr);
  bool same = rank == int(shape.size()) + 1 && dims[0] >= rows;
  for (size_t d = 0; same && d < shape.size(); d++) same = dims[d + 1] == hsize_t(shape[d]);
  if (!same) {
    std::string want = "(checkpoints", got = "(";
    for (int64_t s : shape) want += ", " + std::to_string(s);
    for (size_t d = 0; d < dims.size(); d++) got += (d ? ", " : "") + std::to_string(dims[d]);
    fail("trajectory '", path, "': tensor '", name, "' has shape ", got, ") but the model needs ", want, ") with at least ",
         rows, " checkpoints");
  }
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  count[0] = rows;
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle mspace(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
  FRUGAL_CHECK(H5Dread(ds, type, mspace, fspace, H5P_DEFAULT, out) >= 0, "trajectory '", path, "': could not read ", name);
}

hsize_t rows_of(hid_t file, const char* name, const std::string& path) {
  FRUGAL_CHECK(H5Lexists(file, name, H5P_DEFAULT) > 0, "trajectory '", path, "' has no dataset '", name, "'");
  Handle ds(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  Handle space(H5Dget_space(ds), H5Sclose);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  return n;
}

}  // namespace

void write_trajectory_checkpoint(const std::string& path, int index, int64_t step, double accuracy, const GPT2& model) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t f;
  if (index == 0) {
    f = checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "create the file", path);
  } else {
    FRUGAL_CHECK(std::filesystem::exists(path), "trajectory '", path, "' is missing: checkpoint ", index,
                 " continues a file that checkpoint 0 creates");
    f = checked(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "open the file for writing", path);
  }
  Handle file(f, H5Fclose);
  if (index == 0) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, std::string_view(kFormat).size() + 1);
    Handle attr(H5Acreate2(file, "format", type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    H5Awrite(attr, type, kFormat);
    const GPT2Config& c = model.config;
    write_int_attr(file, "version", 1);
    write_int_attr(file, "n_layer", c.num_layers);
    write_int_attr(file, "n_head", c.num_heads);
    write_int_attr(file, "n_embd", c.channels);
    write_int_attr(file, "block_size", c.max_seq_len);
    write_int_attr(file, "vocab_size", c.vocab_size);
    write_int_attr(file, "padded_vocab_size", c.padded_vocab_size);
  }
  write_row(file, "step", {}, H5T_NATIVE_INT64, &step, index, path);
  write_row(file, "eval_accuracy", {}, H5T_NATIVE_DOUBLE, &accuracy, index, path);
  for (const NamedTensor& t : gpt2_named_tensors(model.config))
    write_row(file, t.name, t.shape, H5T_NATIVE_FLOAT, model.params.data() + t.offset, index, path);
  H5Fflush(file, H5F_SCOPE_GLOBAL);
}

Trajectory read_trajectory(const std::string& path, int64_t last_step) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  FRUGAL_CHECK(std::filesystem::exists(path), "trajectory '", path, "' does not exist (a GRPO run with grpo.trajectory_every > 0 writes <run dir>/trajectory.h5)");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  FRUGAL_CHECK(file.id >= 0, "trajectory '", path, "' is not a readable HDF5 file");
  Trajectory t;
  t.path = path;
  GPT2Config& c = t.model;
  c.num_layers = int(read_int_attr(file, "n_layer", path));
  c.num_heads = int(read_int_attr(file, "n_head", path));
  c.channels = int(read_int_attr(file, "n_embd", path));
  c.max_seq_len = int(read_int_attr(file, "block_size", path));
  c.vocab_size = int(read_int_attr(file, "vocab_size", path));
  c.padded_vocab_size = int(read_int_attr(file, "padded_vocab_size", path));
  const hsize_t stored = rows_of(file, "step", path);
  FRUGAL_CHECK(rows_of(file, "eval_accuracy", path) == stored, "trajectory '", path, "': step and eval_accuracy differ in length");
  std::vector<int64_t> steps(stored);
  read_rows(file, "step", {}, H5T_NATIVE_INT64, steps.data(), stored, path);
  hsize_t rows = 0;
  while (rows < stored && steps[rows] <= last_step) {
    FRUGAL_CHECK(rows == 0 || steps[rows] > steps[rows - 1], "trajectory '", path, "': steps are not increasing");
    rows++;
  }
  t.steps.assign(steps.begin(), steps.begin() + long(rows));
  t.accuracy.resize(rows);
  read_rows(file, "eval_accuracy", {}, H5T_NATIVE_DOUBLE, t.accuracy.data(), rows, path);
  for (const NamedTensor& spec : gpt2_named_tensors(c)) {
    TrajectoryTensor tt{spec, std::vector<float>(rows * spec.numel)};
    read_rows(file, spec.name, spec.shape, H5T_NATIVE_FLOAT, tt.data.data(), rows, path);
    t.tensors.push_back(std::move(tt));
  }
  return t;
}

}  // namespace frugal
