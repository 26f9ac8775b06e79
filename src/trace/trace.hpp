#pragma once
// HDF5 trace of a run (schema: src/trace/SCHEMA.md), written by rank 0. Rows are buffered in
// memory and written by flush(), which ends with H5Fflush: between flushes the file is never
// touched, so a killed job leaves the file exactly as of its last flush, readable.
#include <hdf5.h>

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "comm/communicator.hpp"

namespace frugal {

using Cell = std::variant<int64_t, double>;
using Row = std::vector<std::pair<std::string, Cell>>;

struct RankTotals {
  std::vector<double> compute_time, comm_time;
  std::vector<int64_t> bytes_sent, calls;
};

class TraceWriter {
 public:
  // Creates `path` (which must not exist), or with resume_step >= 0 reopens it and drops every row written
  // after that step (steps/, eval/, comm/calls), so a resumed run continues the same trace.
  TraceWriter(const std::string& path, const std::vector<Network>& networks, int64_t resume_step = -1);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  void set_attr(const std::string& name, const std::string& value);
  void set_attr(const std::string& name, int64_t value);
  void set_attr(const std::string& name, double value);

  // Creates the (empty) columns of table `group` now, typed like the cells given, so that readers
  // find them before the first row.
  void declare(const std::string& group, const Row& columns);
  // Buffers one row of table `group` ("steps", "eval"). Every row of a table has the same columns.
  void append(const std::string& group, const Row& row);
  void append_calls(const std::vector<CallRecord>& calls, int world_size);
  void set_rank_totals(const RankTotals& totals);
  // Writes the buffered rows and flushes the file to disk.
  void flush();
  const std::string& path() const { return path_; }

 private:
  struct Column {
    hid_t dataset = -1;
    bool is_int = false;
    std::vector<int64_t> ints;
    std::vector<double> reals;
  };
  Column& column(const std::string& group, const std::string& name, bool is_int);
  void truncate_after(int64_t step);

  std::string path_;
  hid_t file_ = -1;
  std::vector<Network> networks_;
  std::map<std::string, hid_t> groups_;
  std::map<std::string, std::map<std::string, Column>> tables_;
  hid_t calls_type_ = -1, calls_dataset_ = -1;
  size_t call_row_bytes_ = 0;
  std::vector<char> pending_calls_;
  size_t pending_call_rows_ = 0;
  RankTotals ranks_;
  bool ranks_dirty_ = false;
};

// The status attribute of the trace at `path` (running, finished, stopped, failed), or "" when
// there is no readable trace there.
std::string trace_status(const std::string& path);

// Reading: root attributes and 1-D datasets, for `frugal info`, `frugal compare` and tests.
class TraceReader {
 public:
  explicit TraceReader(const std::string& path);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  bool has_attr(const std::string& name) const;
  std::string attr_string(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  std::vector<std::string> attr_names() const;
  bool has_dataset(const std::string& path) const;
  std::vector<double> read_doubles(const std::string& path) const;  // any numeric 1-D dataset
  std::vector<std::string> dataset_names(const std::string& group) const;
  int64_t num_call_records() const;
  // One field of every comm/calls row: numbers as doubles (step, control, payload_bytes, ...), or
  // the strings op and tag.
  std::vector<double> read_call_field(const std::string& field) const;
  std::vector<std::string> read_call_strings(const std::string& field) const;

 private:
  std::string path_;
  hid_t file_ = -1;
};

}  // namespace frugal
