// Compressor throughput on a GPT-2-small-shaped parameter set (124M floats), in GB/s of dense fp32
// parameters processed, next to a plain memcpy of the same bytes in the same run:
//   compress          EF update + chunked top-k + 2-bit quantise + encode (SparseLoCo, top_k 128)
//   compress_noencode the same without building the message
//   encode            building the message from ready sparse tensors
//   decode_aggregate  decode R = 4 messages + aggregate (mean over selecting replicas)
//   demo_compress     DeMo: momentum update + 2-D DCT per tile + top-k + residual update
// Run from the build folder, e.g.  OMP_NUM_THREADS=1 ./bench/bench_compress --benchmark_min_time=0.1
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "compress/chunking.hpp"
#include "compress/dct.hpp"
#include "compress/error_feedback.hpp"
#include "compress/sparse_message.hpp"
#include "core/rng.hpp"

using namespace frugal::compress;

namespace {

// GPT-2 small: wte 50304 x 768, wpe 1024 x 768, 12 blocks of {qkv 2304 x 768, proj 768 x 768,
// fc 3072 x 768, fcproj 768 x 3072} with their biases and layer norms, final layer norm.
std::vector<ChunkLayout> gpt2_small() {
  const int64_t C = 768;
  std::vector<ChunkLayout> ls = {matrix_layout(50304, C), matrix_layout(1024, C)};
  for (int l = 0; l < 12; ++l) {
    for (const ChunkLayout& m : {matrix_layout(3 * C, C), matrix_layout(C, C), matrix_layout(4 * C, C),
                                 matrix_layout(C, 4 * C)})
      ls.push_back(m);
    for (int64_t n : {C, C, 3 * C, C, C, C, 4 * C, C}) ls.push_back(vector_layout(n));
  }
  ls.push_back(vector_layout(C));
  ls.push_back(vector_layout(C));
  return ls;
}

// Roughly normal numbers (Irwin-Hall of 4 uniforms), counter-based so filling is parallel.
void fill(std::vector<float>& v, uint32_t sub, float scale) {
  const int64_t n = int64_t(v.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const auto r = frugal::philox_block(42, uint32_t(frugal::Stream::method), sub, uint64_t(i));
    float s = 0;
    for (int j = 0; j < 4; ++j) s += frugal::u32_to_unit(r.v[j]);
    v[size_t(i)] = scale * (s - 2.0f) * 1.7320508f;
  }
}

struct Model {
  std::vector<ChunkLayout> layouts;
  std::vector<size_t> offsets;  // into the flat buffers
  size_t total = 0;
  std::vector<float> e0, e, g, out;  // e0: the error buffer every benchmark starts from
};

// Every benchmark starts from the same error buffer: compressing updates e in place, so without
// this each variant (and the message-size counters) would see the state the previous one left.
void reset_error(Model& m) { m.e = m.e0; }

Model& model() {
  static Model m = [] {
    Model m;
    m.layouts = gpt2_small();
    for (const ChunkLayout& l : m.layouts) {
      m.offsets.push_back(m.total);
      m.total += size_t(l.numel());
    }
    m.e.resize(m.total);
    m.g.resize(m.total);
    m.out.resize(m.total);
    fill(m.e, 1, 0.01f);
    m.e0 = m.e;
    fill(m.g, 2, 0.01f);
    return m;
  }();
  return m;
}

void compress_all(Model& m, const EfOptions& opt, std::vector<SparseTensor>& sp) {
  sp.resize(m.layouts.size());
  for (size_t t = 0; t < m.layouts.size(); ++t)
    ef_compress(m.e.data() + m.offsets[t], m.g.data() + m.offsets[t], m.layouts[t], opt, sp[t]);
}

void set_bytes(benchmark::State& state, const Model& m) {
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(m.total * sizeof(float)));
}

void BM_memcpy(benchmark::State& state) {
  Model& m = model();
  for (auto _ : state) {
    std::memcpy(m.out.data(), m.g.data(), m.total * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(state, m);
}

void BM_compress(benchmark::State& state) {
  Model& m = model();
  const IndexCoding coding = IndexCoding(state.range(0));
  std::vector<SparseTensor> sp;
  WireStats st;
  reset_error(m);
  for (auto _ : state) {
    compress_all(m, {}, sp);
    std::vector<uint8_t> msg = encode_message(sp, {.index = coding}, &st);
    benchmark::DoNotOptimize(msg.data());
  }
  set_bytes(state, m);
  // The message of the first step from the shared starting buffer: the same data for every coding.
  reset_error(m);
  compress_all(m, {}, sp);
  encode_message(sp, {.index = coding}, &st);
  state.counters["msg_MB"] = double(st.bytes) / 1e6;
  state.counters["ratio"] = st.ratio_vs_dense();
  state.SetLabel(coding == IndexCoding::packed12 ? "12-bit" : "rice");
}

void BM_compress_noencode(benchmark::State& state) {
  Model& m = model();
  std::vector<SparseTensor> sp;
  reset_error(m);
  for (auto _ : state) {
    compress_all(m, {}, sp);
    benchmark::DoNotOptimize(sp.data());
  }
  set_bytes(state, m);
}

void BM_encode(benchmark::State& state) {
  Model& m = model();
  const IndexCoding coding = IndexCoding(state.range(0));
  std::vector<SparseTensor> sp;
  reset_error(m);
  compress_all(m, {}, sp);
  for (auto _ : state) {
    std::vector<uint8_t> msg = encode_message(sp, {.index = coding});
    benchmark::DoNotOptimize(msg.data());
  }
  set_bytes(state, m);
  state.SetLabel(coding == IndexCoding::packed12 ? "12-bit" : "rice");
}

void BM_decode_aggregate(benchmark::State& state) {
  Model& m = model();
  const IndexCoding coding = IndexCoding(state.range(0));
  const int R = 4;
  // R replicas' messages: each from its own gradient, compressed from a zero EF buffer.
  std::vector<std::vector<uint8_t>> msgs(R);
  {
    std::vector<float> e(m.total), g(m.total);
    std::vector<SparseTensor> sp(m.layouts.size());
    for (int r = 0; r < R; ++r) {
      std::fill(e.begin(), e.end(), 0.0f);
      fill(g, uint32_t(10 + r), 0.01f);
      for (size_t t = 0; t < m.layouts.size(); ++t)
        ef_compress(e.data() + m.offsets[t], g.data() + m.offsets[t], m.layouts[t], {}, sp[t]);
      msgs[r] = encode_message(sp, {.index = coding});
    }
  }
  std::vector<std::span<const uint8_t>> views(msgs.begin(), msgs.end());
  std::vector<float*> outs;
  for (size_t off : m.offsets) outs.push_back(m.out.data() + off);
  DecodeWorkspace ws;  // reused across steps, as a method would
  for (auto _ : state) {
    decode_and_aggregate(views, Aggregation::mean_selected, outs, m.layouts, &ws);
    benchmark::ClobberMemory();
  }
  set_bytes(state, m);
  state.SetLabel(coding == IndexCoding::packed12 ? "12-bit R=4" : "rice R=4");
}

void BM_demo_compress(benchmark::State& state) {
  Model& m = model();
  std::vector<DctPlan> plans;
  for (const ChunkLayout& l : m.layouts) plans.push_back(make_dct_plan(l));
  std::vector<SparseTensor> sp(m.layouts.size());
  reset_error(m);  // DeMo's residual delta starts from the same buffer
  for (auto _ : state) {
    for (size_t t = 0; t < m.layouts.size(); ++t)
      demo_compress(m.e.data() + m.offsets[t], m.g.data() + m.offsets[t], m.layouts[t], plans[t], {}, sp[t]);
    benchmark::DoNotOptimize(sp.data());
  }
  set_bytes(state, m);
}

constexpr int64_t k12 = int64_t(IndexCoding::packed12), kRice = int64_t(IndexCoding::rice);

BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compress)->Arg(k12)->Arg(kRice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compress_noencode)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encode)->Arg(k12)->Arg(kRice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_decode_aggregate)->Arg(k12)->Arg(kRice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_demo_compress)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
