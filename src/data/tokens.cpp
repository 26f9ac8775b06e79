#include "data/tokens.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "data/corpus.hpp"

namespace frugal {

namespace {
constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr size_t kHeaderBytes = 256 * sizeof(int32_t);
}  // namespace

// One array of tokens: owned (vector) or a read-only mapping of a shard file.
struct TokenStream::Part {
  std::vector<uint16_t> owned;
  const uint16_t* data = nullptr;
  uint64_t n = 0;
  void* map = nullptr;
  size_t map_bytes = 0;
  ~Part() {
    if (map) munmap(map, map_bytes);
  }
};

TokenStream TokenStream::from_tokens(std::vector<uint16_t> tokens, std::string name) {
  auto p = std::make_shared<Part>();
  p->owned = std::move(tokens);
  p->data = p->owned.data();
  p->n = p->owned.size();
  TokenStream s;
  s.max_token_ = p->n ? *std::max_element(p->owned.begin(), p->owned.end()) : 0;
  s.parts_.push_back(std::move(p));
  s.name_ = std::move(name);
  return s;
}

TokenStream TokenStream::from_shards(const std::string& pattern) {
  glob_t g{};
  const int rc = glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) files.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  FRUGAL_CHECK(!files.empty(), "no token shard matches '", pattern, "'");
  std::sort(files.begin(), files.end());
  TokenStream s;
  s.name_ = pattern;
  for (const auto& f : files) {
    const int fd = open(f.c_str(), O_RDONLY);
    FRUGAL_CHECK(fd >= 0, "cannot open token shard '", f, "': ", std::strerror(errno));
    struct stat st {};
    fstat(fd, &st);
    const size_t bytes = static_cast<size_t>(st.st_size);
    if (bytes < kHeaderBytes) {
      close(fd);
      fail("token shard '", f, "' is too short for its 1024-byte header (", bytes, " bytes)");
    }
    void* map = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    FRUGAL_CHECK(map != MAP_FAILED, "cannot map token shard '", f, "': ", std::strerror(errno));
    auto p = std::make_shared<Part>();
    p->map = map;
    p->map_bytes = bytes;
    const auto* h = static_cast<const int32_t*>(map);
    FRUGAL_CHECK(h[0] == kShardMagic, "token shard '", f, "' has bad magic ", h[0], " (expected ", kShardMagic,
                 "): not an llm.c .bin shard");
    FRUGAL_CHECK(h[1] == kShardVersion, "token shard '", f, "' has unsupported version ", h[1], " (expected 1)");
    FRUGAL_CHECK(h[2] >= 0 && kHeaderBytes + 2 * static_cast<uint64_t>(h[2]) == bytes, "token shard '", f,
                 "' header says ", h[2], " tokens but the file holds ", (bytes - kHeaderBytes) / 2.0, " (truncated?)");
    p->data = reinterpret_cast<const uint16_t*>(static_cast<const char*>(map) + kHeaderBytes);
    p->n = static_cast<uint64_t>(h[2]);
    for (uint64_t i = 0; i < p->n; i++) s.max_token_ = std::max<int>(s.max_token_, p->data[i]);
    s.parts_.push_back(std::move(p));
  }
  return s;
}

uint64_t TokenStream::num_tokens() const {
  uint64_t n = 0;
  for (const auto& p : parts_) n += p->n;
  return n;
}

uint64_t TokenStream::num_sequences(int T) const {
  uint64_t n = 0;
  for (const auto& p : parts_) n += p->n > static_cast<uint64_t>(T) ? (p->n - 1) / T : 0;
  return n;
}

void TokenStream::sequence(uint64_t j, int T, int* inputs, int* targets) const {
  const uint64_t total = num_sequences(T);
  FRUGAL_CHECK(total > 0, "data '", name_, "' has no complete sequence of ", T + 1, " tokens");
  j %= total;
  for (const auto& p : parts_) {
    const uint64_t here = p->n > static_cast<uint64_t>(T) ? (p->n - 1) / T : 0;
    if (j < here) {
      const uint16_t* t = p->data + j * T;
      for (int i = 0; i < T; i++) {
        inputs[i] = t[i];
        targets[i] = t[i + 1];
      }
      return;
    }
    j -= here;
  }
}

void load_batch(const TokenStream& stream, uint64_t first, int B, int T, int* inputs, int* targets) {
  for (int b = 0; b < B; b++) stream.sequence(first + b, T, inputs + size_t(b) * T, targets + size_t(b) * T);
}

void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  int32_t h[256] = {};
  h[0] = kShardMagic;
  h[1] = kShardVersion;
  h[2] = static_cast<int32_t>(tokens.size());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  FRUGAL_CHECK(out, "cannot write token shard '", path, "'");
  out.write(reinterpret_cast<const char*>(h), sizeof h);
  out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  FRUGAL_CHECK(out.good(), "writing token shard '", path, "' failed");
}

void add_data_keys(Schema& s) {
  s.add("data.source", std::string("corpus"), "corpus = built-in grammar; text = bytes of a file; shards = llm.c .bin token shards",
        {}, {}, {"corpus", "text", "shards"});
  s.add("data.path", std::string(""), "text file, or shard glob (e.g. data/fineweb_train_*.bin)");
  s.add("data.val_path", std::string(""), "held-out text file or shard glob; empty = the last val_fraction of the training data (text) or a separate corpus split");
  s.add("data.val_fraction", 0.1, "share of a text file held out for evaluation when val_path is empty", 0.0, 0.9);
  s.add("data.batch_size", int64_t{8}, "global batch: sequences per optimiser step over all ranks (each rank takes batch_size/ranks)", 1, 1 << 24);
  s.add("data.seq_len", int64_t{64}, "tokens per sequence (T)", 1, 1 << 20);
  s.add("data.corpus_tokens", int64_t{2000000}, "training tokens of the built-in corpus (validation gets a tenth)", 1000, int64_t{1} << 32);
  s.add("data.corpus_vocab", int64_t{512}, "vocabulary of the built-in corpus", 64, 65535);
  s.add("data.corpus_topics", int64_t{8}, "document topics of the built-in corpus", 1, 1024);
  s.add("data.corpus_seed", int64_t{1234}, "seed of the built-in corpus (independent of run.seed, so every run sees the same data)", 0, 9.0e18);
}

Dataset load_dataset(const Config& cfg) {
  const std::string& source = cfg.str("data.source");
  const std::string& path = cfg.str("data.path");
  const std::string& val_path = cfg.str("data.val_path");
  Dataset d;
  if (source == "corpus") {
    CorpusSpec spec;
    spec.vocab_size = static_cast<int>(cfg.integer("data.corpus_vocab"));
    spec.topics = static_cast<int>(cfg.integer("data.corpus_topics"));
    spec.seed = static_cast<uint64_t>(cfg.integer("data.corpus_seed"));
    const auto n = static_cast<size_t>(cfg.integer("data.corpus_tokens"));
    d.train = TokenStream::from_tokens(generate_corpus(spec, n, 0), "corpus/train");
    d.val = TokenStream::from_tokens(generate_corpus(spec, std::max<size_t>(n / 10, 1000), 1), "corpus/val");
    d.vocab_size = spec.vocab_size;
  } else if (source == "text") {
    FRUGAL_CHECK(!path.empty(), "data.source = \"text\" needs data.path");
    auto read_bytes = [](const std::string& p) {
      std::ifstream in(p, std::ios::binary);
      FRUGAL_CHECK(in, "cannot open text file '", p, "'");
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      return std::vector<uint16_t>(reinterpret_cast<unsigned char*>(bytes.data()),
                                   reinterpret_cast<unsigned char*>(bytes.data()) + bytes.size());
    };
    std::vector<uint16_t> all = read_bytes(path);
    if (val_path.empty()) {
      const auto n_val = static_cast<size_t>(static_cast<double>(all.size()) * cfg.real("data.val_fraction"));
      std::vector<uint16_t> val(all.end() - static_cast<ptrdiff_t>(n_val), all.end());
      all.resize(all.size() - n_val);
      d.val = TokenStream::from_tokens(std::move(val), path + " (held-out tail)");
    } else {
      d.val = TokenStream::from_tokens(read_bytes(val_path), val_path);
    }
    d.train = TokenStream::from_tokens(std::move(all), path);
    d.vocab_size = 256;
  } else {  // shards
    FRUGAL_CHECK(!path.empty() || !val_path.empty(), "data.source = \"shards\" needs data.path and/or data.val_path");
    if (!path.empty()) d.train = TokenStream::from_shards(path);
    if (!val_path.empty()) d.val = TokenStream::from_shards(val_path);
    else d.val = d.train;
    if (path.empty()) d.train = d.val;  // evaluation-only use
    d.vocab_size = std::max(d.train.max_token(), d.val.max_token()) + 1;
  }
  return d;
}

}  // namespace frugal
