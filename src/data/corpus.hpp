#pragma once
// The built-in corpus: an endless, seeded, probabilistic English-like grammar, so the quickstart
// needs no download and yet has structure at several ranges:
//   - word classes and agreement (a plural subject takes the plural verb form, across an optional
//     relative clause that puts another noun in between),
//   - phrase structure (determiners, adjectives, prepositional phrases, objects, coordination),
//   - document topics: each document draws one topic, which reshapes (Zipf over a topic-specific
//     permutation) which nouns, verbs and adjectives appear - information only a model that reads
//     far back can use.
// A unigram model, a bigram model and a transformer therefore reach clearly different losses.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace frugal {

struct CorpusSpec {
  int vocab_size = 512;  // total tokens, including 16 function words/punctuation
  int topics = 8;
  uint64_t seed = 1;
};

// Generates n_tokens tokens of sub-stream `split` (0 = train, 1 = validation: same grammar and
// topics, independent documents).
std::vector<uint16_t> generate_corpus(const CorpusSpec& spec, size_t n_tokens, uint32_t split);

}  // namespace frugal
