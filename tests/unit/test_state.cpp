// Checkpoints: llm.c GPT-2 files and frugal's per-rank state files, including malformed ones.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.hpp"
#include "test_util.hpp"
#include "core/state.hpp"
#include "model/llmc_checkpoint.hpp"

using namespace frugal;

namespace {
std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST(LlmcCheckpoint, RoundTripsAndMatchesTheLlmcHeader) {
  GPT2Config c;
  c.vocab_size = 50;
  c.padded_vocab_size = 64;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 16;
  c.max_seq_len = 12;
  GPT2 m = gpt2_create(c);
  gpt2_init_weights(m, 3);
  const std::string path = testing::TempDir() + "model.bin";
  save_llmc_checkpoint(m, path);
  const std::string bytes = read_all(path);
  ASSERT_EQ(bytes.size(), 1024 + 4 * m.params.size());
  const auto* h = reinterpret_cast<const int32_t*>(bytes.data());
  EXPECT_EQ(h[0], 20240326);
  EXPECT_EQ(h[1], 3);
  EXPECT_EQ(h[2], 12);
  EXPECT_EQ(h[3], 50);
  EXPECT_EQ(h[4], 2);
  EXPECT_EQ(h[5], 2);
  EXPECT_EQ(h[6], 16);
  EXPECT_EQ(h[7], 64);
  const GPT2 back = load_llmc_checkpoint(path);
  EXPECT_EQ(back.params, m.params);
  EXPECT_EQ(back.config.channels, 16);

  const std::string dir = testing::TempDir();
  std::ofstream(dir + "trunc.bin", std::ios::binary) << bytes.substr(0, bytes.size() - 4);
  std::string bad = bytes;
  reinterpret_cast<int32_t*>(bad.data())[0] = 1;
  std::ofstream(dir + "magic.bin", std::ios::binary) << bad;
  bad = bytes;
  reinterpret_cast<int32_t*>(bad.data())[1] = 5;
  std::ofstream(dir + "bf16.bin", std::ios::binary) << bad;
  bad = bytes;
  reinterpret_cast<int32_t*>(bad.data())[5] = 3;  // heads not dividing channels
  std::ofstream(dir + "heads.bin", std::ios::binary) << bad;
  EXPECT_NE(error_of([&] { load_llmc_checkpoint(dir + "trunc.bin"); }).find("needs"), std::string::npos);
  EXPECT_NE(error_of([&] { load_llmc_checkpoint(dir + "magic.bin"); }).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of([&] { load_llmc_checkpoint(dir + "bf16.bin"); }).find("bf16"), std::string::npos);
  EXPECT_NE(error_of([&] { load_llmc_checkpoint(dir + "heads.bin"); }).find("inconsistent header"), std::string::npos);
  EXPECT_NE(error_of([&] { load_llmc_checkpoint(dir + "absent.bin"); }).find("cannot open"), std::string::npos);
}

TEST(StateFile, RoundTripsAndRejectsCorruption) {
  StateWriter w;
  std::vector<float> v = {1, 2, 3};
  w.put("params", v);
  w.put_i64("step", 42);
  w.put_string("method", "ddp");
  const std::string path = testing::TempDir() + "state.bin";
  w.save(path);
  StateReader r(path);
  std::vector<float> out(3);
  r.get("params", out);
  EXPECT_EQ(out, v);
  EXPECT_EQ(r.get_i64("step"), 42);
  EXPECT_EQ(r.get_string("method"), "ddp");
  std::vector<float> wrong(4);
  EXPECT_NE(error_of([&] { r.get("params", wrong); }).find("holds 12 bytes, expected 16"), std::string::npos);
  EXPECT_NE(error_of([&] { r.get_i64("absent"); }).find("no section 'absent'"), std::string::npos);

  std::string bytes = read_all(path);
  bytes[20] ^= 1;
  std::ofstream(path + ".flip", std::ios::binary) << bytes;
  EXPECT_NE(error_of([&] { StateReader x(path + ".flip"); }).find("checksum"), std::string::npos);
  std::ofstream(path + ".junk", std::ios::binary) << "not a checkpoint at all, really";
  EXPECT_NE(error_of([&] { StateReader x(path + ".junk"); }).find("not a frugal state file"), std::string::npos);
}
