// Built-in verifiable tasks: generation, answer extraction and verification. Rules in tasks.hpp.
#include "rlvr/tasks.hpp"

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"

namespace frugal {

namespace {

// Each problem owns 2^24 words of its split's stream: far more than the candidates it may draw
// (kMaxCandidates * at most ~30 words), so problems never share random numbers.
constexpr int kWordsPerProblemLog2 = 24;
constexpr int64_t kMaxIndex = int64_t{1} << 40;  // index << 24 must fit the 64-bit counter
// A split that stays empty this long is a configuration error (a problem space too small for
// eval_modulus), not bad luck: with eval_modulus <= 1024 the chance is below e^-97.
constexpr int kMaxCandidates = 100000;
constexpr int kMaxDepth = 64;       // countdown parentheses nesting
constexpr int kMaxLiteralDigits = 18;  // any 18-digit number fits int64

int digits_of(int64_t v) {
  int d = 1;
  for (v = v < 0 ? -v : v; v >= 10; v /= 10) d++;
  return d;
}

int64_t pow10(int d) {
  int64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// ---- arithmetic -------------------------------------------------------------------------------

// A d-digit operand, uniform among the d-digit numbers (0..9 for one digit, so 0 appears).
int64_t draw_operand(Rng& rng, int d) {
  if (d == 1) return rng.below(10);
  const int64_t lo = pow10(d - 1);
  return lo + rng.below(static_cast<uint32_t>(9 * lo));  // 9 * 10^8 < 2^32
}

Problem draw_arithmetic(const TaskSettings& s, Rng& rng) {
  const char op = s.ops[rng.below(static_cast<uint32_t>(s.ops.size()))];
  const auto draw = [&] {
    const int d = s.min_digits + static_cast<int>(rng.below(static_cast<uint32_t>(s.max_digits - s.min_digits + 1)));
    return draw_operand(rng, d);
  };
  const int64_t a = draw();
  const int64_t b = draw();
  Problem p;
  p.prompt = std::to_string(a) + op + std::to_string(b) + "=";
  p.target = op == '+' ? a + b : op == '-' ? a - b : a * b;  // |.| < 10^18: no overflow
  p.solution = std::to_string(p.target);
  return p;
}

// ---- countdown --------------------------------------------------------------------------------

// Checked int64 arithmetic shared by the generator and the verifier; false on overflow, division
// by zero or a division that is not exact (why says which).
bool apply_op(char op, int64_t a, int64_t b, int64_t* out, const char** why) {
  switch (op) {
    case '+':
      if (__builtin_add_overflow(a, b, out)) return *why = "overflow", false;
      return true;
    case '-':
      if (__builtin_sub_overflow(a, b, out)) return *why = "overflow", false;
      return true;
    case '*':
      if (__builtin_mul_overflow(a, b, out)) return *why = "overflow", false;
      return true;
    default:  // '/'
      if (b == 0) return *why = "division by zero", false;
      if (b == -1 && a == INT64_MIN) return *why = "overflow", false;
      if (a % b != 0) return *why = "inexact division", false;
      *out = a / b;
      return true;
  }
}

int precedence(char op) { return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 3; }

struct TreeNode {
  int64_t value = 0;
  char op = 0;  // 0 = a literal
  int left = -1, right = -1;
};

// Minimal parentheses: a child is wrapped when it binds more loosely than its parent, or - on the
// right of a non-commutative '-' or '/' - equally loosely. What is left out changes nothing, even
// with exact division: a*(b/c) prints as a*b/c, evaluated (a*b)/c, exact and equal since c | b.
void print_tree(const std::vector<TreeNode>& t, int i, std::string& out) {
  const TreeNode& n = t[size_t(i)];
  if (n.op == 0) {
    out += std::to_string(n.value);
    return;
  }
  const auto child = [&](int c, bool right) {
    const int pc = precedence(t[size_t(c)].op), pn = precedence(n.op);
    const bool wrap = pc < pn || (right && pc == pn && (n.op == '-' || n.op == '/'));
    if (wrap) out += '(';
    print_tree(t, c, out);
    if (wrap) out += ')';
  };
  child(n.left, false);
  out += n.op;
  child(n.right, true);
}

// One candidate: numbers, a random order, a random tree combining adjacent subexpressions with an
// op uniform among the valid ones. false when the target falls outside [1, 999].
bool draw_countdown(const TaskSettings& s, Rng& rng, Problem* p) {
  const int n = s.countdown_numbers;
  std::vector<TreeNode> tree;
  std::vector<int> list(size_t(n), 0);
  for (int i = 0; i < n; i++) {
    tree.push_back({1 + int64_t(rng.below(uint32_t(s.countdown_max_number))), 0, -1, -1});
    list[size_t(i)] = i;
  }
  for (int i = n - 1; i > 0; i--) std::swap(list[size_t(i)], list[rng.below(uint32_t(i + 1))]);  // Fisher-Yates
  while (list.size() > 1) {
    const size_t i = rng.below(uint32_t(list.size() - 1));
    const int a = list[i], b = list[i + 1];
    char valid[4] = {'+', '-', '*', 0};
    int nvalid = 3;
    const int64_t va = tree[size_t(a)].value, vb = tree[size_t(b)].value;
    if (vb != 0 && va % vb == 0) valid[nvalid++] = '/';
    const char op = valid[rng.below(uint32_t(nvalid))];
    TreeNode node{0, op, a, b};
    const char* why = nullptr;
    // Values stay below 999^6 < 2^63 with the settings' bounds; checked all the same.
    if (!apply_op(op, va, vb, &node.value, &why)) return false;
    tree.push_back(node);
    list[i] = int(tree.size()) - 1;
    list.erase(list.begin() + long(i) + 1);
  }
  const int root = list[0];
  const int64_t target = tree[size_t(root)].value;
  if (target < 1 || target > 999) return false;
  p->numbers.clear();
  for (int i = 0; i < n; i++) p->numbers.push_back(tree[size_t(i)].value);
  std::sort(p->numbers.begin(), p->numbers.end());
  p->target = target;
  p->prompt.clear();
  for (int i = 0; i < n; i++) {
    if (i > 0) p->prompt += ',';
    p->prompt += std::to_string(p->numbers[size_t(i)]);
  }
  p->prompt += '>' + std::to_string(target) + '=';
  p->solution.clear();
  print_tree(tree, root, p->solution);
  return true;
}

// Recursive-descent parser that evaluates as it goes (no tree, so a long chain "1+1+...+1" never
// recurses; only parentheses do, bounded by kMaxDepth). Syntax errors stop it; semantic errors
// (a literal not given, inexact division, ...) are recorded - the first one wins - and parsing
// goes on, so a malformed expression is reported as malformed whatever its arithmetic.
struct ExprParser {
  std::string_view s;
  const std::vector<int64_t>* numbers = nullptr;  // null: syntax only
  std::vector<char> used;
  size_t pos = 0;
  int depth = 0;
  std::string syntax_error, semantic_error;

  void skip() {
    while (pos < s.size() && s[pos] == ' ') pos++;
  }
  bool failed() const { return !syntax_error.empty(); }
  void syntax(const std::string& msg) {
    if (syntax_error.empty()) syntax_error = msg + " at position " + std::to_string(pos);
  }
  void semantic(const std::string& msg) {
    if (semantic_error.empty()) semantic_error = msg;
  }
  int64_t combine(char op, int64_t a, int64_t b) {
    if (!semantic_error.empty() || numbers == nullptr) return 0;
    int64_t r = 0;
    const char* why = nullptr;
    if (!apply_op(op, a, b, &r, &why)) semantic(std::string(why) + " in " + std::to_string(a) + op + std::to_string(b));
    return r;
  }

  int64_t expr() {  // term (('+' | '-') term)*
    int64_t v = term();
    for (skip(); !failed() && pos < s.size() && (s[pos] == '+' || s[pos] == '-'); skip()) {
      const char op = s[pos++];
      v = combine(op, v, term());
    }
    return v;
  }
  int64_t term() {  // factor (('*' | '/') factor)*
    int64_t v = factor();
    for (skip(); !failed() && pos < s.size() && (s[pos] == '*' || s[pos] == '/'); skip()) {
      const char op = s[pos++];
      v = combine(op, v, factor());
    }
    return v;
  }
  int64_t factor() {  // literal | '(' expr ')'
    skip();
    if (failed()) return 0;
    if (pos >= s.size()) return syntax("expected a number or '('"), 0;
    if (s[pos] == '(') {
      if (++depth > kMaxDepth) return syntax("parentheses nested too deeply"), 0;
      pos++;
      const int64_t v = expr();
      skip();
      if (failed()) return 0;
      if (pos >= s.size() || s[pos] != ')') return syntax("expected ')'"), 0;
      pos++;
      depth--;
      return v;
    }
    if (s[pos] < '0' || s[pos] > '9') return syntax(std::string("unexpected '") + s[pos] + "'"), 0;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') pos++;
    const size_t len = pos - start;
    if (len > size_t(kMaxLiteralDigits)) return syntax("a literal longer than 18 digits"), 0;
    if (len > 1 && s[start] == '0') return syntax("a literal with a leading zero"), 0;
    int64_t v = 0;
    for (size_t i = start; i < pos; i++) v = v * 10 + (s[i] - '0');
    use(v);
    return v;
  }
  // Multiset semantics: take the first given copy of v not yet used.
  void use(int64_t v) {
    if (numbers == nullptr) return;
    bool given = false;
    for (size_t j = 0; j < numbers->size(); j++) {
      if ((*numbers)[j] != v) continue;
      given = true;
      if (!used[j]) {
        used[j] = 1;
        return;
      }
    }
    semantic(given ? std::to_string(v) + " used more often than given" : std::to_string(v) + " is not a given number");
  }

  // Parse the whole text; false on a syntax error.
  int64_t run(bool* ok) {
    skip();
    if (pos >= s.size()) {
      syntax("empty expression");
      return *ok = false, 0;
    }
    const int64_t v = expr();
    skip();
    if (!failed() && pos < s.size())
      syntax(s[pos] == ')' ? "unbalanced ')'" : std::string("unexpected '") + s[pos] + "'");
    *ok = !failed();
    return v;
  }
};

std::string_view trim(std::string_view t) {
  while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
  while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
  return t;
}

}  // namespace

// ---- settings ---------------------------------------------------------------------------------

const char* task_name(TaskKind kind) { return kind == TaskKind::countdown ? "countdown" : "arithmetic"; }

void check_task_settings(const TaskSettings& s) {
  FRUGAL_CHECK(s.min_digits >= 1 && s.min_digits <= 9, "task.min_digits (", s.min_digits, ") must be in [1, 9]");
  FRUGAL_CHECK(s.max_digits >= 1 && s.max_digits <= 9, "task.max_digits (", s.max_digits, ") must be in [1, 9]");
  FRUGAL_CHECK(s.min_digits <= s.max_digits, "task.min_digits (", s.min_digits, ") must not exceed task.max_digits (",
               s.max_digits, ")");
  FRUGAL_CHECK(!s.ops.empty(), "task.ops must name at least one of the operators \"+-*\"");
  for (size_t i = 0; i < s.ops.size(); i++) {
    const char c = s.ops[i];
    FRUGAL_CHECK(c == '+' || c == '-' || c == '*', "task.ops (\"", s.ops, "\") may only contain '+', '-' and '*'");
    FRUGAL_CHECK(s.ops.find(c) == i, "task.ops (\"", s.ops, "\") names '", c, "' twice");
  }
  FRUGAL_CHECK(s.countdown_numbers >= 2 && s.countdown_numbers <= 6, "task.countdown_numbers (", s.countdown_numbers,
               ") must be in [2, 6]");
  FRUGAL_CHECK(s.countdown_max_number >= 1 && s.countdown_max_number <= 999, "task.countdown_max_number (",
               s.countdown_max_number, ") must be in [1, 999]");
  FRUGAL_CHECK(s.format_reward >= 0.0 && s.format_reward <= 1.0, "task.format_reward (", s.format_reward,
               ") must be in [0, 1]");
  FRUGAL_CHECK(s.eval_modulus >= 2 && s.eval_modulus <= 1024, "task.eval_modulus (", s.eval_modulus,
               ") must be in [2, 1024]");
}

void add_task_keys(Schema& s) {
  s.add("task.seed", int64_t{1}, "seed of the problem set (train and eval problems); 0 = the run's seed", 0, 1e15);
  s.add("task.name", std::string("arithmetic"),
        "built-in verifiable task: arithmetic (\"12+34=\") or countdown (\"3,5,7>22=\")", {}, {},
        {"arithmetic", "countdown"});
  s.add("task.min_digits", int64_t{1}, "arithmetic: fewest digits of an operand", 1, 9);
  s.add("task.max_digits", int64_t{2}, "arithmetic: most digits of an operand (>= task.min_digits)", 1, 9);
  s.add("task.ops", std::string("+-*"), "arithmetic: operators drawn from, a non-empty subset of \"+-*\"");
  s.add("task.countdown_numbers", int64_t{3}, "countdown: given numbers per problem", 2, 6);
  s.add("task.countdown_max_number", int64_t{20}, "countdown: each given number is in [1, this]", 1, 999);
  s.add("task.countdown_use_all", true,
        "countdown: an answer must use every given number (TinyZero); else each at most once");
  s.add("task.format_reward", 0.0, "reward of a finished, well-formed but wrong answer (correct = 1)", 0.0, 1.0);
  s.add("task.eval_modulus", int64_t{8}, "a problem is eval iff fnv1a64(prompt) % this == 0, else train", 2, 1024);
}

TaskSettings task_settings_from(const Config& c, uint64_t seed) {
  TaskSettings s;
  const std::string& name = c.str("task.name");
  FRUGAL_CHECK(name == "arithmetic" || name == "countdown", "task.name (\"", name,
               "\") must be arithmetic or countdown");
  s.kind = name == "countdown" ? TaskKind::countdown : TaskKind::arithmetic;
  // Clamp before narrowing so an absurd value is reported as itself by check_task_settings' ranges.
  const auto narrow = [&](const char* key) {
    return static_cast<int>(std::clamp<int64_t>(c.integer(key), INT32_MIN, INT32_MAX));
  };
  s.min_digits = narrow("task.min_digits");
  s.max_digits = narrow("task.max_digits");
  s.ops = c.str("task.ops");
  s.countdown_numbers = narrow("task.countdown_numbers");
  s.countdown_max_number = narrow("task.countdown_max_number");
  s.countdown_use_all = c.boolean("task.countdown_use_all");
  s.format_reward = c.real("task.format_reward");
  s.eval_modulus = narrow("task.eval_modulus");
  // One fixed problem set for every run.seed by default: seeds of a study (and the SFT base) then
  // share the eval split, so their spread is the method's, not the eval sets'.
  const int64_t task_seed = c.integer("task.seed");
  s.seed = task_seed > 0 ? static_cast<uint64_t>(task_seed) : seed;
  check_task_settings(s);
  return s;
}

// ---- generation -------------------------------------------------------------------------------

uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

Split split_of(const TaskSettings& s, std::string_view prompt) {
  return fnv1a64(prompt) % static_cast<uint64_t>(s.eval_modulus) == 0 ? Split::eval : Split::train;
}

Problem make_problem(const TaskSettings& s, Split split, int64_t index) {
  check_task_settings(s);
  FRUGAL_CHECK(index >= 0 && index < kMaxIndex, "task problem index ", index, " is outside [0, 2^40)");
  Rng rng(s.seed, kTaskStream, static_cast<uint32_t>(split));
  rng.counter = static_cast<uint64_t>(index) << kWordsPerProblemLog2;
  Problem p;
  for (int candidate = 0; candidate < kMaxCandidates; candidate++) {
    if (s.kind == TaskKind::arithmetic)
      p = draw_arithmetic(s, rng);
    else if (!draw_countdown(s, rng, &p))
      continue;  // target outside [1, 999]: redraw from the same stream
    if (split_of(s, p.prompt) == split) return p;
  }
  fail("task ", task_name(s.kind), ": no ", split == Split::eval ? "eval" : "train", " problem in ", kMaxCandidates,
       " candidates; the problem space is too small for task.eval_modulus (", s.eval_modulus, ")");
}

int max_problem_chars(const TaskSettings& s) {
  if (s.kind == TaskKind::arithmetic) {
    const int d = s.max_digits;
    int answer = 1;
    for (const char op : s.ops) answer = std::max(answer, op == '*' ? 2 * d : d + 1);  // "99+99"=198, "0-99"=-99
    return (2 * d + 2) + answer + 1;
  }
  const int n = s.countdown_numbers, l = digits_of(s.countdown_max_number);
  const int prompt = n * l + (n - 1) + 1 + 3 + 1;             // numbers, commas, '>', target <= 999, '='
  const int solution = n * l + (n - 1) + 2 * std::max(0, n - 2);  // literals, ops, a pair per inner node
  return prompt + solution + 1;
}

// ---- verification -----------------------------------------------------------------------------

std::string_view extract_answer(std::string_view completion, bool* finished) {
  const size_t end = completion.find(kEndMarker);
  if (finished) *finished = end != std::string_view::npos;
  std::string_view t = completion.substr(0, end);
  const size_t eq = t.rfind('=');
  if (eq != std::string_view::npos) t.remove_prefix(eq + 1);
  return trim(t);
}

bool parse_integer_answer(std::string_view t, int64_t* value) {
  const bool negative = !t.empty() && t[0] == '-';
  if (negative) t.remove_prefix(1);
  if (t.empty() || t.size() > size_t(kMaxLiteralDigits)) return false;
  if (t.size() > 1 && t[0] == '0') return false;  // leading zero
  if (negative && t == "0") return false;         // "-0" is not canonical
  int64_t v = 0;
  for (const char c : t) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');  // 18 digits < 2^63
  }
  if (value) *value = negative ? -v : v;
  return true;
}

bool is_countdown_expression(std::string_view expr) {
  ExprParser parser;
  parser.s = expr;
  bool ok = false;
  parser.run(&ok);
  return ok;
}

bool evaluate_countdown(std::string_view expr, const std::vector<int64_t>& numbers, bool use_all, int64_t* value,
                        std::string* why) {
  ExprParser parser;
  parser.s = expr;
  parser.numbers = &numbers;
  parser.used.assign(numbers.size(), 0);
  bool ok = false;
  const int64_t v = parser.run(&ok);
  std::string reason;
  if (!ok)
    reason = "malformed: " + parser.syntax_error;
  else if (!parser.semantic_error.empty())
    reason = parser.semantic_error;
  else if (use_all)
    for (size_t j = 0; j < numbers.size(); j++)
      if (!parser.used[j]) {
        reason = std::to_string(numbers[j]) + " is not used (every given number must be)";
        break;
      }
  if (!reason.empty()) {
    if (why) *why = reason;
    return false;
  }
  if (value) *value = v;
  return true;
}

Verdict score_completion(const TaskSettings& s, const Problem& p, std::string_view completion) {
  Verdict v;
  const std::string_view answer = extract_answer(completion, &v.finished);
  if (s.kind == TaskKind::arithmetic) {
    int64_t got = 0;
    v.well_formed = parse_integer_answer(answer, &got);
    v.correct = v.well_formed && got == p.target;
  } else {
    v.well_formed = is_countdown_expression(answer);
    int64_t got = 0;
    v.correct = v.well_formed && evaluate_countdown(answer, p.numbers, s.countdown_use_all, &got, nullptr) &&
                got == p.target;
  }
  v.reward = !v.finished ? 0.0 : v.correct ? 1.0 : v.well_formed ? s.format_reward : 0.0;
  return v;
}

}  // namespace frugal
