#pragma once
// Token streams and batches. A stream is one or more token arrays (llm.c shards are memory-mapped,
// the built-in corpus and byte-level text live in memory) viewed as numbered training sequences:
// sequence j is T+1 consecutive tokens (inputs and next-token targets) starting at j*T within one
// array, exactly the windows llm.c's loader reads. Numbering is independent of the rank count, so
// the global batch of a step is the same for 1 or R ranks; rank r takes its own slice of it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace frugal {

class Schema;
class Config;

class TokenStream {
 public:
  // An in-memory array (corpus, text bytes).
  static TokenStream from_tokens(std::vector<uint16_t> tokens, std::string name);
  // llm.c token shards (header magic 20240520, version 1, uint16 tokens); `pattern` may be a glob,
  // matched files are used in sorted order. Errors name the malformed file.
  static TokenStream from_shards(const std::string& pattern);

  // Sequences of length T available (each needs T+1 tokens inside one array).
  uint64_t num_sequences(int T) const;
  // Fills inputs/targets (T ints each) with sequence j modulo num_sequences(T).
  void sequence(uint64_t j, int T, int* inputs, int* targets) const;
  // Largest token id present (for the vocabulary check).
  int max_token() const { return max_token_; }
  uint64_t num_tokens() const;
  const std::string& name() const { return name_; }

 private:
  struct Part;
  std::vector<std::shared_ptr<const Part>> parts_;
  int max_token_ = 0;
  std::string name_;
};

// B consecutive sequences starting at `first` -> inputs, targets (B*T each).
void load_batch(const TokenStream& stream, uint64_t first, int B, int T, int* inputs, int* targets);

// Writes an llm.c token shard (used by tests and to export the built-in corpus).
void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens);

struct Dataset {
  TokenStream train, val;
  int vocab_size = 0;  // tokens the data can contain
};

// data.source = corpus | text | shards (see add_data_keys for the keys).
Dataset load_dataset(const Config& config);
void add_data_keys(Schema& schema);

}  // namespace frugal
