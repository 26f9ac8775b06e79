// Data: the built-in corpus (deterministic, structured), token shards, text files and batches.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/config.hpp"
#include "core/error.hpp"
#include "test_util.hpp"
#include "data/corpus.hpp"
#include "data/tokens.hpp"
#include "harness/method.hpp"

using namespace frugal;

namespace {
// Conditional entropy (nats/token) of the next token given the previous `order` tokens.
double entropy(const std::vector<uint16_t>& t, int order) {
  std::map<std::vector<uint16_t>, std::map<uint16_t, double>> counts;
  for (size_t i = order; i < t.size(); i++)
    counts[std::vector<uint16_t>(t.begin() + static_cast<long>(i) - order, t.begin() + static_cast<long>(i))][t[i]] += 1;
  double h = 0, n = double(t.size() - order);
  for (const auto& [ctx, next] : counts) {
    double total = 0;
    for (const auto& [k, c] : next) total += c;
    for (const auto& [k, c] : next) h -= c / n * std::log(c / total);
  }
  return h;
}
}  // namespace

TEST(Corpus, IsDeterministicAndSplitsDiffer) {
  CorpusSpec s;
  EXPECT_EQ(generate_corpus(s, 5000, 0), generate_corpus(s, 5000, 0));
  EXPECT_NE(generate_corpus(s, 5000, 0), generate_corpus(s, 5000, 1));
  s.seed = 2;
  EXPECT_NE(generate_corpus(s, 5000, 0), generate_corpus(CorpusSpec{}, 5000, 0));
  for (uint16_t t : generate_corpus(s, 5000, 0)) EXPECT_LT(t, s.vocab_size);
}

TEST(Corpus, HasStructureThatLongerContextsExploit) {
  // Each extra token of context must buy a clear drop in entropy: unigram > bigram > trigram.
  CorpusSpec s;
  s.vocab_size = 256;
  const auto t = generate_corpus(s, 400000, 0);
  const double h0 = entropy(t, 0), h1 = entropy(t, 1), h2 = entropy(t, 2);
  EXPECT_GT(h0, 4.0);
  EXPECT_LT(h1, h0 - 1.0) << h0 << " " << h1;
  EXPECT_LT(h2, h1 - 0.2) << h1 << " " << h2;
}

TEST(TokenShards, RoundTripAndSequenceNumbering) {
  std::vector<uint16_t> a(101), b(50);
  for (size_t i = 0; i < a.size(); i++) a[i] = static_cast<uint16_t>(i);
  for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<uint16_t>(1000 + i);
  const std::string dir = testing::TempDir();
  write_token_shard(dir + "shard_000.bin", a);
  write_token_shard(dir + "shard_001.bin", b);
  const TokenStream s = TokenStream::from_shards(dir + "shard_*.bin");
  EXPECT_EQ(s.num_tokens(), 151u);
  const int T = 10;
  EXPECT_EQ(s.num_sequences(T), 10u + 4u);  // (101-1)/10 + (50-1)/10, none across shards
  std::vector<int> in(T), tg(T);
  s.sequence(3, T, in.data(), tg.data());
  EXPECT_EQ(in[0], 30);
  EXPECT_EQ(tg[9], 40);
  s.sequence(10, T, in.data(), tg.data());  // first of the second shard
  EXPECT_EQ(in[0], 1000);
  s.sequence(14, T, in.data(), tg.data());  // wraps around
  EXPECT_EQ(in[0], 0);
  EXPECT_EQ(s.max_token(), 1049);
}

TEST(TokenShards, MalformedShardsAreClearErrors) {
  const std::string dir = testing::TempDir();
  write_token_shard(dir + "ok.bin", {1, 2, 3, 4});
  {  // truncated: header claims more tokens than present
    std::ifstream in(dir + "ok.bin", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir + "trunc.bin", std::ios::binary) << bytes.substr(0, bytes.size() - 2);
    bytes[0] = 'X';
    std::ofstream(dir + "magic.bin", std::ios::binary) << bytes;
  }
  std::ofstream(dir + "short.bin") << "tiny";
  EXPECT_NE(error_of([&] { TokenStream::from_shards(dir + "trunc.bin"); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([&] { TokenStream::from_shards(dir + "magic.bin"); }).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of([&] { TokenStream::from_shards(dir + "short.bin"); }).find("too short"), std::string::npos);
  EXPECT_NE(error_of([&] { TokenStream::from_shards(dir + "none_*.bin"); }).find("no token shard matches"), std::string::npos);
}

TEST(Dataset, TextFilesAreBytesWithAHeldOutTail) {
  const std::string path = testing::TempDir() + "text.txt";
  std::string text;
  for (int i = 0; i < 1000; i++) text += static_cast<char>('a' + i % 26);
  std::ofstream(path) << text;
  const Config c = resolve_config(suite_schema(), "", {"--data.source=text", "--data.path=" + path, "--data.val_fraction=0.2"});
  const Dataset d = load_dataset(c);
  EXPECT_EQ(d.vocab_size, 256);
  EXPECT_EQ(d.train.num_tokens(), 800u);
  EXPECT_EQ(d.val.num_tokens(), 200u);
  const Config missing = resolve_config(suite_schema(), "", {"--data.source=text", "--data.path=/nonexistent.txt"});
  EXPECT_NE(error_of([&] { load_dataset(missing); }).find("/nonexistent.txt"), std::string::npos);
}
