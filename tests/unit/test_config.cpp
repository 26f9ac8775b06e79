// Configuration: precedence, types, bounds, unknown keys, and the TOML round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/config.hpp"
#include "core/error.hpp"
#include "test_util.hpp"
#include "harness/method.hpp"
#include "model/gpt2.hpp"

using namespace frugal;

namespace {
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST(Config, OverridesBeatTheFileWhichBeatsDefaults) {
  const auto path = write_file("a.toml", "[model]\nn_layer = 3\nn_embd = 48\n[optim]\nlr = 0.01\n");
  const Config c = resolve_config(suite_schema(), path, {"--model.n_embd=96", "optim.schedule=linear"});
  EXPECT_EQ(c.integer("model.n_layer"), 3);          // file
  EXPECT_EQ(c.integer("model.n_embd"), 96);          // command line
  EXPECT_EQ(c.integer("model.n_head"), 2);           // default
  EXPECT_DOUBLE_EQ(c.real("optim.lr"), 0.01);
  EXPECT_EQ(c.str("optim.schedule"), "linear");
}

TEST(Config, UnknownKeysAreErrorsWithASuggestion) {
  const auto path = write_file("b.toml", "[model]\nn_layers = 3\n");
  const std::string e = error_of([&] { resolve_config(suite_schema(), path, {}); });
  EXPECT_NE(e.find("unknown config key 'model.n_layers'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'model.n_layer'"), std::string::npos) << e;
  EXPECT_NE(e.find("b.toml:2"), std::string::npos) << e;  // file and line
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "", {"--optim.learning_rate=1"}); }).find("unknown config key"),
            std::string::npos);
}

TEST(Config, WrongTypesAndBoundsAreErrors) {
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "", {"--model.n_layer=two"}); }).find("expects type integer"),
            std::string::npos);
  const auto path = write_file("c.toml", "[model]\nn_layer = \"two\"\n");
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), path, {}); }).find("must be of type integer, got string"), std::string::npos);
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "", {"--model.n_layer=0"}); }).find("below its minimum"),
            std::string::npos);
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "", {"--optim.schedule=exp"}); }).find("not one of"),
            std::string::npos);
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "", {"model.n_layer"}); }).find("--section.key=value"),
            std::string::npos);
  // an integer where a float is expected is fine
  EXPECT_DOUBLE_EQ(resolve_config(suite_schema(), "", {"--optim.lr=1"}).real("optim.lr"), 1.0);
}

TEST(Config, MissingFileAndSyntaxErrorsNameTheFile) {
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), "/nonexistent/x.toml", {}); }).find("/nonexistent/x.toml"),
            std::string::npos);
  const auto path = write_file("d.toml", "[model\nn_layer = 3\n");
  EXPECT_NE(error_of([&] { resolve_config(suite_schema(), path, {}); }).find("d.toml"), std::string::npos);
}

TEST(Config, HeadsMustDivideWidth) {
  const Config c = resolve_config(suite_schema(), "", {"--model.n_embd=50", "--model.n_head=3"});
  EXPECT_NE(error_of([&] { gpt2_config_from(c, 256); }).find("must be divisible by model.n_head"), std::string::npos);
}

TEST(Config, ResolvedTomlReadsBackToTheSameConfig) {
  const Config a = resolve_config(suite_schema(), "", {"--optim.lr=0.000123", "--run.name=x y \"z\"", "--optim.decay_vectors=true"});
  const auto path = write_file("e.toml", a.to_toml());
  const Config b = resolve_config(suite_schema(), path, {});
  EXPECT_EQ(a.values(), b.values());
}

// Every key `frugal --help` lists is exercised by some test: its name appears in a test source
// (tests/mpi/test_keys.cpp changes each method key and checks the outcome changes). A key added
// without a test fails here; a key that no test can reach belongs in the allow-list with the reason.
TEST(Config, EveryKeyIsExercisedByATest) {
  const std::map<std::string, std::string> allowed = {
      // (none today: every key has a test)
  };
  std::string corpus;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(FRUGAL_SOURCE_DIR) + "/tests")) {
    const auto ext = e.path().extension();
    if (!e.is_regular_file() || (ext != ".cpp" && ext != ".hpp" && ext != ".sh" && ext != ".py")) continue;
    std::ifstream in(e.path());
    corpus.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(corpus.size(), 10000u) << "tests not found under " << FRUGAL_SOURCE_DIR;
  std::vector<std::string> untested;
  for (const auto& k : suite_schema().keys())
    if (corpus.find(k.key) == std::string::npos && !allowed.count(k.key)) untested.push_back(k.key);
  EXPECT_TRUE(untested.empty()) << "keys no test mentions: " << ::testing::PrintToString(untested);
  EXPECT_GE(suite_schema().keys().size(), 100u);
}
