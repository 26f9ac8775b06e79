#include "model/llmc_checkpoint.hpp"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"

namespace frugal {

namespace {
constexpr int32_t kMagic = 20240326;
constexpr int32_t kVersionFp32 = 3;
constexpr int32_t kVersionBf16 = 5;
}  // namespace

GPT2 load_llmc_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FRUGAL_CHECK(in, "cannot open llm.c checkpoint '", path, "'");
  const auto file_size = std::filesystem::file_size(path);
  int32_t h[256];
  FRUGAL_CHECK(file_size >= sizeof h && in.read(reinterpret_cast<char*>(h), sizeof h),
               "llm.c checkpoint '", path, "' is too short for its 1024-byte header (", file_size, " bytes)");
  FRUGAL_CHECK(h[0] == kMagic, "llm.c checkpoint '", path, "' has bad magic ", h[0], " (expected ", kMagic, ")");
  FRUGAL_CHECK(h[1] != kVersionBf16, "llm.c checkpoint '", path,
               "' is bf16 (version 5); frugal trains in fp32: export the fp32 (version 3) file");
  FRUGAL_CHECK(h[1] == kVersionFp32, "llm.c checkpoint '", path, "' has unsupported version ", h[1],
               " (expected ", kVersionFp32, ")");
  GPT2Config c;
  c.max_seq_len = h[2];
  c.vocab_size = h[3];
  c.num_layers = h[4];
  c.num_heads = h[5];
  c.channels = h[6];
  c.padded_vocab_size = h[7];
  FRUGAL_CHECK(c.max_seq_len > 0 && c.vocab_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.channels > 0 &&
                   c.padded_vocab_size >= c.vocab_size && c.channels % c.num_heads == 0,
               "llm.c checkpoint '", path, "' has an inconsistent header (maxT ", c.max_seq_len, ", V ", c.vocab_size,
               ", Vp ", c.padded_vocab_size, ", L ", c.num_layers, ", NH ", c.num_heads, ", C ", c.channels, ")");
  GPT2 model = gpt2_create(c);
  const uint64_t expected = sizeof h + model.layout.total * sizeof(float);
  FRUGAL_CHECK(file_size == expected, "llm.c checkpoint '", path, "' has ", file_size, " bytes but its header (L ",
               c.num_layers, ", C ", c.channels, ", Vp ", c.padded_vocab_size, ") needs ", expected);
  in.read(reinterpret_cast<char*>(model.params.data()), static_cast<std::streamsize>(model.layout.total * sizeof(float)));
  FRUGAL_CHECK(in, "llm.c checkpoint '", path, "': read failed");
  return model;
}

void save_llmc_checkpoint(const GPT2& model, const std::string& path) {
  int32_t h[256] = {};
  const GPT2Config& c = model.config;
  h[0] = kMagic;
  h[1] = kVersionFp32;
  h[2] = c.max_seq_len;
  h[3] = c.vocab_size;
  h[4] = c.num_layers;
  h[5] = c.num_heads;
  h[6] = c.channels;
  h[7] = c.padded_vocab_size;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FRUGAL_CHECK(out, "cannot write llm.c checkpoint '", tmp, "'");
    out.write(reinterpret_cast<const char*>(h), sizeof h);
    out.write(reinterpret_cast<const char*>(model.params.data()),
              static_cast<std::streamsize>(model.params.size() * sizeof(float)));
    FRUGAL_CHECK(out.good(), "writing llm.c checkpoint '", tmp, "' failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace frugal
