#pragma once
// llm.c's GPT-2 checkpoint format: a 256 x int32 header (magic 20240326, version 3 = fp32,
// maxT, V, L, NH, C, Vp) followed by the parameters as fp32 in gpt2_layout() order.
#include <string>

#include "model/gpt2.hpp"

namespace frugal {

// Reads a checkpoint into a new model. Errors name the file and what is wrong with it.
GPT2 load_llmc_checkpoint(const std::string& path);
// Writes the model's parameters (atomically: temporary file + rename).
void save_llmc_checkpoint(const GPT2& model, const std::string& path);

}  // namespace frugal
