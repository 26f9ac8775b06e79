#include "data/corpus.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace frugal {

namespace {

// Function words and punctuation occupy the first 16 ids.
enum Fixed : uint16_t { kDoc = 0, kStop, kComma, kThe, kA, kOf, kIn, kThat, kAnd, kWith, kNot, kVery, kSome, kEvery, kOn, kTo, kFixed };

struct Grammar {
  // Content-word classes, as [first id, count). Nouns and verbs come in (singular, plural) pairs:
  // singular id = first + 2i, plural = first + 2i + 1.
  int noun_first, noun_pairs, verb_first, verb_pairs, adj_first, adj_count, adv_first, adv_count;
  // Per topic and class: cumulative Zipf weights over a topic-specific permutation of the class.
  std::vector<std::vector<double>> noun_cdf, verb_cdf, adj_cdf;
  std::vector<std::vector<int>> noun_perm, verb_perm, adj_perm;
};

void zipf_table(int n, Rng& rng, std::vector<int>& perm, std::vector<double>& cdf) {
  perm.resize(n);
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) std::swap(perm[i], perm[rng.below(static_cast<uint32_t>(i + 1))]);
  cdf.resize(n);
  double s = 0;
  for (int i = 0; i < n; i++) cdf[i] = (s += 1.0 / std::pow(i + 1.0, 1.1));
  for (auto& x : cdf) x /= s;
}

int draw(const std::vector<double>& cdf, const std::vector<int>& perm, Rng& rng) {
  const double u = rng.uniform_double();
  const auto i = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
  return perm[std::min<size_t>(static_cast<size_t>(i), perm.size() - 1)];
}

Grammar make_grammar(const CorpusSpec& spec) {
  const int content = spec.vocab_size - kFixed;
  Grammar g;
  g.noun_pairs = content * 40 / 100 / 2;
  g.verb_pairs = content * 28 / 100 / 2;
  g.adj_count = content * 22 / 100;
  g.adv_count = content - 2 * g.noun_pairs - 2 * g.verb_pairs - g.adj_count;
  g.noun_first = kFixed;
  g.verb_first = g.noun_first + 2 * g.noun_pairs;
  g.adj_first = g.verb_first + 2 * g.verb_pairs;
  g.adv_first = g.adj_first + g.adj_count;
  Rng rng(spec.seed, Stream::corpus, 1000);  // the grammar itself: shared by every split
  g.noun_cdf.resize(spec.topics), g.verb_cdf.resize(spec.topics), g.adj_cdf.resize(spec.topics);
  g.noun_perm.resize(spec.topics), g.verb_perm.resize(spec.topics), g.adj_perm.resize(spec.topics);
  for (int t = 0; t < spec.topics; t++) {
    zipf_table(g.noun_pairs, rng, g.noun_perm[t], g.noun_cdf[t]);
    zipf_table(g.verb_pairs, rng, g.verb_perm[t], g.verb_cdf[t]);
    zipf_table(g.adj_count, rng, g.adj_perm[t], g.adj_cdf[t]);
  }
  return g;
}

struct Writer {
  const Grammar& g;
  Rng& rng;
  int topic;
  std::vector<uint16_t>& out;

  void emit(int id) { out.push_back(static_cast<uint16_t>(id)); }
  bool coin(double p) { return rng.uniform_double() < p; }

  // Noun phrase; returns whether it is plural (for agreement).
  bool noun_phrase(int depth) {
    const bool plural = coin(0.4);
    const double d = rng.uniform_double();
    if (plural) emit(d < 0.5 ? kThe : (d < 0.8 ? kSome : kThe));
    else emit(d < 0.55 ? kThe : (d < 0.9 ? kA : kEvery));
    if (coin(0.35)) {
      if (coin(0.2)) emit(kVery);
      emit(g.adj_first + draw(g.adj_cdf[topic], g.adj_perm[topic], rng));
    }
    emit(g.noun_first + 2 * draw(g.noun_cdf[topic], g.noun_perm[topic], rng) + (plural ? 1 : 0));
    if (depth < 2 && coin(0.2)) {
      emit(coin(0.5) ? kOf : (coin(0.5) ? kIn : kWith));
      noun_phrase(depth + 1);
    }
    return plural;
  }

  void verb(bool plural) {
    emit(g.verb_first + 2 * draw(g.verb_cdf[topic], g.verb_perm[topic], rng) + (plural ? 1 : 0));
  }

  void verb_phrase(bool plural, int depth) {
    if (coin(0.1)) emit(kNot);
    verb(plural);
    if (coin(0.6)) noun_phrase(depth + 1);
    if (coin(0.15)) emit(g.adv_first + static_cast<int>(rng.below(static_cast<uint32_t>(g.adv_count))));
    if (depth < 1 && coin(0.15)) {
      emit(kAnd);
      verb_phrase(plural, depth + 1);
    }
  }

  void sentence() {
    const bool plural = noun_phrase(0);
    if (coin(0.15)) {  // relative clause: its own noun sits between subject and verb
      emit(kThat);
      verb(coin(0.5));
      noun_phrase(1);
      emit(kComma);
    }
    verb_phrase(plural, 0);
    emit(kStop);
  }
};

}  // namespace

std::vector<uint16_t> generate_corpus(const CorpusSpec& spec, size_t n_tokens, uint32_t split) {
  FRUGAL_CHECK(spec.vocab_size >= 64 && spec.vocab_size <= 65535, "data.corpus_vocab must be in [64, 65535], got ",
               spec.vocab_size);
  FRUGAL_CHECK(spec.topics >= 1, "data.corpus_topics must be >= 1");
  const Grammar g = make_grammar(spec);
  Rng rng(spec.seed, Stream::corpus, split);
  std::vector<uint16_t> out;
  out.reserve(n_tokens + 64);
  while (out.size() < n_tokens) {
    const int topic = static_cast<int>(rng.below(static_cast<uint32_t>(spec.topics)));
    Writer w{g, rng, topic, out};
    w.emit(kDoc);
    const int sentences = 2 + static_cast<int>(rng.below(8));
    for (int s = 0; s < sentences; s++) w.sentence();
  }
  out.resize(n_tokens);
  return out;
}

}  // namespace frugal
