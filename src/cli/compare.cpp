// frugal compare: run a study (several configurations, rank counts and seeds) and tabulate it.
//
// Study file:
//   [study]
//   name = "quickstart"            # output goes to out_dir (default runs/<name>)
//   launcher = "mpirun"            # or "srun" inside a Slurm allocation
//   [[runs]]
//   name = "ddp-2"                 # run folder; with several seeds, name-s<seed>
//   label = "DDP, 2 ranks"         # table row (default: name)
//   config = "base.toml"           # relative to the study file
//   ranks = 2
//   seeds = [1, 2, 3]              # optional
//   overrides = ["run.method=ddp"] # optional, applied after the config file; "{seed}" in an
//                                  # override is the entry's seed and "{out_dir}" the study's
//                                  # out_dir, so a run can name another's output (a chain:
//                                  # "model.init_from={out_dir}/base-s{seed}/model.bin")
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/units.hpp"
#include "trace/trace.hpp"

extern char** environ;
namespace fs = std::filesystem;

namespace frugal::cli {

namespace {

struct StudyRun {
  std::string name, label, config;
  int ranks = 1;
  int64_t seed = -1;  // -1: the config's own
  std::vector<std::string> overrides;
};

std::string str_or(const toml::table& t, const char* key, const std::string& fallback) {
  if (const auto* n = t.get(key)) {
    auto v = n->value<std::string>();
    FRUGAL_CHECK(v, "study key '", key, "' must be a string");
    return *v;
  }
  return fallback;
}

void check_keys(const toml::table& t, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& [k, v] : t) {
    (void)v;
    FRUGAL_CHECK(allowed.count(std::string(k.str())), "unknown key '", k.str(), "' in ", where);
  }
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  FRUGAL_CHECK(n > 0, "cannot find the frugal executable's path");
  return std::string(buf, static_cast<size_t>(n));
}

int spawn_and_wait(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; e++) {
    const std::string kv = *e;
    bool replaced = false;
    for (const auto& x : extra_env) replaced |= kv.substr(0, kv.find('=')) == x.substr(0, x.find('='));
    if (!replaced) env_store.push_back(kv);
  }
  env_store.insert(env_store.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> env;
  for (auto& s : env_store) env.push_back(s.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), env.data());
  FRUGAL_CHECK(rc == 0, "cannot start '", argv[0], "': ", std::strerror(rc));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every occurrence of `key` in `text` replaced by `value`.
std::string substitute(std::string text, const std::string& key, const std::string& value) {
  for (size_t pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + value.size()))
    text.replace(pos, key.size(), value);
  return text;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / double(v.size());
}
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

// The vocabulary a trace declares (harness/vocabulary.hpp); traces older than these attributes
// are language-model traces.
struct TraceVocabulary {
  std::string samples = "tokens", eval = "loss";
  bool higher_is_better = false;
  bool operator==(const TraceVocabulary&) const = default;
};
TraceVocabulary read_vocabulary(const TraceReader& t) {
  TraceVocabulary v;
  if (t.has_attr("sample_unit")) v.samples = t.attr_string("sample_unit");
  if (t.has_attr("eval_metric")) v.eval = t.attr_string("eval_metric");
  if (t.has_attr("higher_is_better")) v.higher_is_better = t.attr_int("higher_is_better") != 0;
  else v.higher_is_better = v.eval == "return";  // traces written before the attribute existed
  return v;
}

double sum_of(const TraceReader& t, const std::string& dataset) {
  double s = 0;
  for (double x : t.read_doubles(dataset)) s += x;
  return s;
}

void print_one_table(const std::vector<std::string>& traces) {
  struct Group {
    std::string method;
    int64_t ranks = 0;
    std::vector<double> eval, rate, bytes, wall, flops, flops_dense, train_time, syncs;
    std::vector<double> start;  // eval/ at step 0 (eval.at_start: the starting point), of the traces that have it
    std::map<std::string, std::vector<double>> net;
  };
  std::vector<std::string> order, networks;
  std::map<std::string, Group> groups;
  std::optional<TraceVocabulary> vocab;  // print_table gives each table one vocabulary
  for (const auto& path : traces) {
    TraceReader t(path);
    const TraceVocabulary v = read_vocabulary(t);  // the same for every trace of the table
    if (!vocab) vocab = v;
    const std::string status = t.attr_string("status");
    if (status != "finished") {
      std::fprintf(stderr, "frugal: skipping %s (status %s)\n", path.c_str(), status.c_str());
      continue;
    }
    const std::string label = t.attr_string("label");
    if (!groups.count(label)) order.push_back(label);
    Group& g = groups[label];
    g.method = t.attr_string("method");
    g.ranks = t.attr_int("world_size");
    g.eval.push_back(t.attr_double("final_eval_" + v.eval));
    if (t.has_dataset("eval/step") && t.has_dataset("eval/" + v.eval)) {
      const auto step = t.read_doubles("eval/step"), value = t.read_doubles("eval/" + v.eval);
      for (size_t i = 0; i < step.size() && i < value.size(); i++)
        if (step[i] == 0) {
          g.start.push_back(value[i]);
          break;
        }
    }
    g.rate.push_back(t.attr_double(v.samples + "_per_s"));
    g.bytes.push_back(t.attr_double("comm_bytes_per_rank"));
    g.wall.push_back(t.attr_double("wall_time_s"));
    g.flops.push_back(t.attr_double("flops_total"));
    // A method that trains part of the model says what the dense model would have cost.
    if (t.has_dataset("steps/flops_dense")) g.flops_dense.push_back(sum_of(t, "steps/flops_dense"));
    g.train_time.push_back(sum_of(t, "steps/step_time"));  // the wall time less evaluation and setup
    double syncs = 0;  // steps that sent bytes
    for (double b : t.read_doubles("steps/comm_bytes")) syncs += b > 0;
    g.syncs.push_back(syncs);
    const std::string nets = t.attr_string("networks");
    size_t pos = 0;
    while (pos <= nets.size() && !nets.empty()) {
      const size_t end = nets.find(',', pos);
      const std::string n = nets.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      if (std::find(networks.begin(), networks.end(), n) == networks.end()) networks.push_back(n);
      g.net[n].push_back(t.attr_double("net_time_s_" + n));
      if (end == std::string::npos) break;
      pos = end + 1;
    }
  }
  const TraceVocabulary v = vocab.value_or(TraceVocabulary{});
  std::string rate = v.samples + "/s";
  std::replace(rate.begin(), rate.end(), '_', ' ');
  // The starting point's column only where some trace evaluated before its first step.
  bool any_start = false;
  for (const auto& label : order) any_start |= !groups[label].start.empty();
  std::printf("\n%-30s %-10s %5s %5s", "run", "method", "ranks", "seeds");
  if (any_start) std::printf(" %14s", ("start " + v.eval).c_str());
  std::printf(" %18s %11s %12s", ("eval " + v.eval).c_str(), rate.c_str(), "sent/rank");
  for (const auto& n : networks) std::printf(" %14s", ("comm@" + n).c_str());
  std::printf(" %10s %10s %9s\n", "FLOPs", "train time", "wall");
  for (const auto& label : order) {
    const Group& g = groups[label];
    char metric[64];
    std::snprintf(metric, sizeof metric, "%.5g +- %.2g", mean(g.eval), stddev(g.eval));
    std::printf("%-30s %-10s %5lld %5zu", label.c_str(), g.method.c_str(), static_cast<long long>(g.ranks), g.eval.size());
    if (any_start) {
      char start[32] = "-";
      if (!g.start.empty()) std::snprintf(start, sizeof start, "%.5g", mean(g.start));
      std::printf(" %14s", start);
    }
    std::printf(" %18s %11.0f %12s", metric, mean(g.rate), si(mean(g.bytes), "B").c_str());
    for (const auto& n : networks)
      std::printf(" %14s", g.net.count(n) ? seconds(mean(g.net.at(n))).c_str() : "-");
    std::printf(" %10s %10s %9s\n", si(mean(g.flops), "").c_str(), seconds(mean(g.train_time)).c_str(),
                seconds(mean(g.wall)).c_str());
  }
  std::printf("(eval %s: mean +- std over seeds, %s is better; sent/rank: bytes a rank put on the wire; comm@net:\n"
              " modelled time of all collectives on that network; %s and wall: measured on this machine)\n",
              v.eval.c_str(), v.higher_is_better ? "higher" : "lower", rate.c_str());
  std::printf("(FLOPs: training FLOPs of all ranks; train time: the sum of step times, evaluation excluded)\n");
  if (any_start)
    std::printf("(start %s: eval/%s at step 0 (eval.at_start: the starting model), mean over the seeds that have it;\n"
                " -: no trace of the row has one)\n",
                v.eval.c_str(), v.eval.c_str());
  // A row that trained part of the model (its trace has steps/flops_dense) against the dense row
  // that did the same work in full: same rank count, FLOPs equal to its dense-equivalent FLOPs; of
  // several, the one that synchronised as often as the subnetwork run (DDP rather than DiLoCo), as
  // analysis/report.py chooses.
  for (const auto& label : order) {
    const Group& e = groups[label];
    if (e.flops_dense.size() != e.flops.size()) continue;
    const std::string* best = nullptr;
    for (const auto& dense_label : order) {
      const Group& d = groups[dense_label];
      if (!d.flops_dense.empty() || d.ranks != e.ranks || std::fabs(mean(d.flops) / mean(e.flops_dense) - 1.0) > 1e-9) continue;
      if (!best || std::fabs(mean(d.syncs) - mean(e.syncs)) < std::fabs(mean(groups[*best].syncs) - mean(e.syncs))) best = &dense_label;
    }
    if (best) {
      const std::string& dense_label = *best;
      const Group& d = groups[dense_label];
      std::printf("%s vs %s: training FLOPs %+.1f%%, train time %+.1f%%, eval %s %+.4g (%.5g +- %.2g vs %.5g +- %.2g)\n",
                  label.c_str(), dense_label.c_str(), 100.0 * (mean(e.flops) / mean(d.flops) - 1.0),
                  100.0 * (mean(e.train_time) / mean(d.train_time) - 1.0), v.eval.c_str(), mean(e.eval) - mean(d.eval),
                  mean(e.eval), stddev(e.eval), mean(d.eval), stddev(d.eval));
    }
  }
  std::fflush(stdout);
}

}  // namespace

// One table per vocabulary, in the order the vocabularies first appear: a study that chains
// methods of different domains (GRPO runs and the extrapolations between them) gets a table each.
void print_table(const std::vector<std::string>& traces) {
  std::vector<std::pair<TraceVocabulary, std::vector<std::string>>> parts;
  for (const auto& path : traces) {
    const TraceVocabulary v = read_vocabulary(TraceReader(path));
    auto it = std::find_if(parts.begin(), parts.end(), [&](const auto& p) { return p.first == v; });
    if (it == parts.end()) parts.push_back({v, {path}});
    else it->second.push_back(path);
  }
  if (parts.empty()) print_one_table({});
  for (const auto& [v, paths] : parts) print_one_table(paths);
}

int compare(const std::vector<std::string>& args) {
  std::string study_path, launcher_option;
  std::vector<std::string> overrides;
  bool dry_run = false, list_entries = false, table_only = false, fresh = false;
  int64_t only = -1;  // --index N: just entry N (a Slurm array task)
  for (const auto& a : args) {
    if (a == "--dry-run") dry_run = true;
    else if (a == "--list") list_entries = true;
    else if (a == "--table") table_only = true;
    else if (a == "--fresh") fresh = true;
    else if (a.rfind("--index=", 0) == 0) {
      try {
        only = std::stoll(a.substr(8));
      } catch (const std::exception&) {
        fail("--index takes an entry number, got '", a.substr(8), "'");
      }
    } else if (a.rfind("--launcher=", 0) == 0) launcher_option = a.substr(11);
    else if (a.rfind("--", 0) == 0) overrides.push_back(a);
    else {
      FRUGAL_CHECK(study_path.empty(), "frugal compare takes one study file (got '", study_path, "' and '", a, "')");
      study_path = a;
    }
  }
  FRUGAL_CHECK(!study_path.empty(), "usage: frugal compare STUDY.toml [--list | --index=N | --table] [--fresh] "
                                    "[--launcher=mpirun|srun] [--dry-run] [--section.key=value ...]");
  toml::table study;
  try {
    study = toml::parse_file(study_path);
  } catch (const toml::parse_error& e) {
    fail("study file '", study_path, "': ", e.description(), " (line ", e.source().begin.line, ")");
  }
  check_keys(study, {"study", "runs"}, "study file '" + study_path + "'");
  const toml::table* head = study["study"].as_table();
  FRUGAL_CHECK(head, "study file '", study_path, "' needs a [study] table");
  check_keys(*head, {"name", "out_dir", "launcher", "description"}, "[study] of '" + study_path + "'");
  const std::string name = str_or(*head, "name", fs::path(study_path).stem().string());
  const std::string out_dir = str_or(*head, "out_dir", "runs/" + name);
  const std::string launcher = launcher_option.empty() ? str_or(*head, "launcher", "mpirun") : launcher_option;
  FRUGAL_CHECK(launcher == "mpirun" || launcher == "srun", "study launcher must be mpirun or srun, got '", launcher, "'");
  const fs::path base = fs::path(study_path).parent_path();

  std::vector<StudyRun> runs;
  const toml::array* list = study["runs"].as_array();
  FRUGAL_CHECK(list && !list->empty(), "study file '", study_path, "' has no [[runs]]");
  for (const auto& node : *list) {
    const toml::table* r = node.as_table();
    FRUGAL_CHECK(r, "every [[runs]] entry must be a table");
    check_keys(*r, {"name", "label", "config", "ranks", "seeds", "overrides"}, "a [[runs]] entry of '" + study_path + "'");
    StudyRun run;
    run.name = str_or(*r, "name", "");
    FRUGAL_CHECK(!run.name.empty(), "a [[runs]] entry of '", study_path, "' has no name");
    run.label = str_or(*r, "label", run.name);
    run.config = str_or(*r, "config", "");
    FRUGAL_CHECK(!run.config.empty(), "run '", run.name, "' has no config file");
    run.config = (base / run.config).string();
    FRUGAL_CHECK(fs::exists(run.config), "run '", run.name, "': config file '", run.config, "' does not exist");
    run.ranks = static_cast<int>((*r)["ranks"].value_or(int64_t{1}));
    FRUGAL_CHECK(run.ranks >= 1, "run '", run.name, "': ranks must be >= 1");
    if (const auto* o = (*r)["overrides"].as_array())
      for (const auto& x : *o) {
        auto s = x.value<std::string>();
        FRUGAL_CHECK(s, "run '", run.name, "': overrides must be strings like \"section.key=value\"");
        run.overrides.push_back("--" + *s);
      }
    for (auto& o : run.overrides) o = substitute(o, "{out_dir}", out_dir);
    if (const auto* seeds = (*r)["seeds"].as_array()) {
      for (const auto& s : *seeds) {
        StudyRun each = run;
        each.seed = s.value_or(int64_t{-1});
        FRUGAL_CHECK(each.seed >= 0, "run '", run.name, "': seeds must be non-negative integers");
        each.name = run.name + "-s" + std::to_string(each.seed);
        for (auto& o : each.overrides) o = substitute(o, "{seed}", std::to_string(each.seed));
        runs.push_back(each);
      }
    } else {
      runs.push_back(run);
    }
  }

  const auto trace_of = [&](const StudyRun& r) { return (fs::path(out_dir) / r.name / "trace.h5").string(); };
  if (list_entries) {  // one line per entry: what a job array needs to size itself
    int max_ranks = 0;
    for (size_t i = 0; i < runs.size(); i++) {
      std::printf("%zu %s ranks=%d%s\n", i, runs[i].name.c_str(), runs[i].ranks,
                  runs[i].seed >= 0 ? (" seed=" + std::to_string(runs[i].seed)).c_str() : "");
      max_ranks = std::max(max_ranks, runs[i].ranks);
    }
    std::printf("# %zu entries, at most %d ranks; out_dir %s\n", runs.size(), max_ranks, out_dir.c_str());
    return 0;
  }
  if (table_only) {  // the table of what has finished so far, running nothing
    std::vector<std::string> traces;
    size_t missing = 0;
    for (const auto& r : runs) {
      if (fs::exists(trace_of(r))) traces.push_back(trace_of(r));
      else missing++;
    }
    std::printf("\n== study %s: %zu of %zu runs have a trace in %s\n", name.c_str(), traces.size(), runs.size(), out_dir.c_str());
    print_table(traces);
    return missing == 0 ? 0 : 1;
  }
  if (only >= 0) {
    FRUGAL_CHECK(only < int64_t(runs.size()), "--index=", only, " but the study has ", runs.size(), " entries (0 to ",
                 runs.size() - 1, ")");
    runs = {runs[size_t(only)]};
  }

  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const std::string exe = self_exe();
  std::vector<std::string> traces, failed;
  for (const auto& run : runs) {
    // Each entry continues where it stands: a finished run is kept, a stopped or killed one resumes
    // from its last checkpoint, one that died before any checkpoint starts again; --fresh starts
    // every entry over. So a requeued study (or array task) never redoes or loses a finished run.
    const std::string trace = trace_of(run);
    std::vector<std::string> mode = {"--checkpoint.resume=auto"};
    if (fresh) {
      mode = {"--run.overwrite=true", "--checkpoint.resume=no"};
    } else if (fs::exists(trace)) {
      if (trace_status(trace) == "finished") {
        std::printf("\n== %s: finished (%s), kept\n", run.name.c_str(), trace.c_str());
        traces.push_back(trace);
        continue;
      }
      if (!fs::exists(fs::path(out_dir) / run.name / "checkpoints" / "latest")) mode.push_back("--run.overwrite=true");
    }
    std::vector<std::string> argv;
    std::vector<std::string> env;
    if (launcher == "mpirun") {
      argv = {"mpirun", "-np", std::to_string(run.ranks)};
      if (run.ranks > cores) argv.push_back("--oversubscribe");
      // Open MPI binds each rank to one core by default for small jobs, which would pin all of a
      // rank's OpenMP threads to that core.
      if (cores / run.ranks > 1) argv.insert(argv.end(), {"--bind-to", "none"});
      if (geteuid() == 0) env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"};
    } else {
      // Inside an allocation: Open MPI needs Slurm's PMIx to wire up ranks started by srun.
      argv = {"srun", "--ntasks=" + std::to_string(run.ranks)};
      const char* mpi = std::getenv("FRUGAL_SRUN_MPI");
      argv.push_back(std::string("--mpi=") + (mpi && *mpi ? mpi : "pmix"));
    }
    // Share the cores among the ranks unless the user chose a thread count.
    if (!std::getenv("OMP_NUM_THREADS")) env.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1, cores / run.ranks)));
    argv.insert(argv.end(), {exe, "run", run.config, "--run.name=" + run.name, "--run.label=" + run.label,
                             "--run.out_dir=" + out_dir});
    argv.insert(argv.end(), mode.begin(), mode.end());
    if (run.seed >= 0) argv.push_back("--run.seed=" + std::to_string(run.seed));
    argv.insert(argv.end(), run.overrides.begin(), run.overrides.end());
    argv.insert(argv.end(), overrides.begin(), overrides.end());
    std::string line;
    for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
    std::printf("\n== %s: %s\n", run.name.c_str(), line.c_str());
    std::fflush(stdout);
    if (dry_run) continue;
    const int rc = spawn_and_wait(argv, env);
    if (rc != 0) {
      std::fprintf(stderr, "frugal: run '%s' failed (exit %d)\n", run.name.c_str(), rc);
      failed.push_back(run.name);
      continue;
    }
    traces.push_back(trace);
  }
  if (only >= 0) return failed.empty() ? 0 : 1;  // an array task: the table comes from --table
  if (dry_run) return 0;
  std::printf("\n== study %s: %zu runs in %s\n", name.c_str(), runs.size(), out_dir.c_str());
  print_table(traces);
  if (!failed.empty()) {
    std::string list;
    for (const auto& f : failed) list += " " + f;
    std::fprintf(stderr, "frugal: %zu run(s) failed:%s\n", failed.size(), list.c_str());
    return 1;
  }
  return 0;
}

// One attribute's value as text: strings as they are, numbers as integers where they are whole.
std::string attr_text(const TraceReader& t, const std::string& name) {
  try {
    return t.attr_string(name);
  } catch (const Error&) {
    char buf[64];
    const double d = t.attr_double(name);
    if (d == std::floor(d) && std::fabs(d) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", d);
    else std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
  }
}

int info(const std::vector<std::string>& args) {
  FRUGAL_CHECK(!args.empty(), "usage: frugal info TRACE.h5 [ATTRIBUTE ...]");
  TraceReader t(args[0]);
  if (args.size() > 1) {  // just the values, one per line (for scripts: `frugal info T status`)
    for (size_t i = 1; i < args.size(); i++) {
      FRUGAL_CHECK(t.has_attr(args[i]), "trace '", args[0], "' has no root attribute '", args[i], "' (see src/trace/SCHEMA.md)");
      std::printf("%s\n", attr_text(t, args[i]).c_str());
    }
    return 0;
  }
  std::printf("trace %s\n", args[0].c_str());
  for (const auto& name : t.attr_names())
    if (name != "config") std::printf("  %-22s %s\n", name.c_str(), attr_text(t, name).c_str());
  for (const char* g : {"steps", "eval", "ranks"}) {
    const auto names = t.dataset_names(g);
    if (names.empty()) continue;
    const auto rows = t.read_doubles(std::string(g) + "/" + names.front()).size();
    std::string list;
    for (const auto& n : names) list += " " + n;
    std::printf("  %s/ (%zu rows):%s\n", g, rows, list.c_str());
  }
  std::printf("  comm/calls: %lld records\n", static_cast<long long>(t.num_call_records()));
  const TraceVocabulary v = read_vocabulary(t);
  if (t.has_dataset("eval/" + v.eval)) {
    const auto value = t.read_doubles("eval/" + v.eval);
    const auto step = t.read_doubles("eval/step");
    for (size_t i = 0; i < value.size(); i++) std::printf("  eval step %6.0f  %s %.6f\n", step[i], v.eval.c_str(), value[i]);
  }
  return 0;
}

}  // namespace frugal::cli
