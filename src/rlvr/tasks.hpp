#pragma once
// Built-in verifiable tasks for RL on a byte-level language model: problems generated
// deterministically from the run's seed, and a verifier that turns a completion into a reward.
//
// Tokens are bytes: a token id is the character's ASCII code, every generated character is
// printable ASCII (32..126), and the model's vocabulary is kTaskVocab = 128. A completion ends at
// kEndMarker ('\n').
//
// Tasks (TaskSettings::kind):
//   arithmetic  prompt "<a><op><b>="  e.g. "12+34="; op from TaskSettings::ops (a subset of
//               "+-*"), each operand has d digits with d uniform in [min_digits, max_digits] and
//               the value uniform among the d-digit numbers (0..9 for d = 1).
//               Solution: the exact integer in canonical decimal ("46", "-7", "0").
//   countdown   TinyZero's task. Prompt "<n1>,<n2>,...,<nk>><target>="  e.g. "3,5,7>22=": the
//               countdown_numbers given numbers (each in [1, countdown_max_number]) in ascending
//               order, comma-separated, then '>' and the target, then '='. The numbers are listed
//               sorted so that one problem (a multiset and a target) has exactly one prompt, and
//               the train/eval split below is a property of the problem, not of its presentation.
//               The target comes from a random expression tree over ALL the numbers, in a random
//               order, with + - * and exact / (only where the division is exact and the divisor is
//               non-zero), so every problem is solvable using each number exactly once; targets
//               outside [1, 999] are redrawn. Solution: that expression with MINIMAL parentheses
//               under the usual precedence (* / over + -, left to right), e.g. "3*5+7", "(3+5)*7",
//               "7-(3-5)".
//
// Splits: a problem belongs to eval iff fnv1a64(prompt) % eval_modulus == 0, and to train
// otherwise, so train and eval are disjoint by construction (compare prompts, not indices).
// make_problem(split, index) draws candidates from the problem's own random stream - stream
// (seed, kTaskStream, sub = split), words from index * 2^24 on - until one falls into the split:
// a pure function of (settings, split, index), with no state to checkpoint.
//
// Answer extraction (extract_answer; the ONE rule every task uses): the completion is the text the
// model generated after the prompt. It is "finished" iff it contains kEndMarker. The answer text is
// everything before the first kEndMarker (the whole completion if unfinished); if that text
// contains '=', the answer is the part after the LAST '=' (so "12+34=46" answers "46" - and for
// countdown "3*5+7=22" answers "22", which is wrong: write the expression only). Leading and
// trailing whitespace (space, tab, CR) is trimmed. Text after the first end marker is ignored.
//
// Verifier:
//   arithmetic  well-formed iff the answer is a canonical decimal integer: an optional '-' then
//               1..18 digits, no leading zero except "0" itself, no "-0", no '+', no inner
//               spaces (longer answers are malformed, never an overflow). Correct iff it equals
//               the true value.
//   countdown   well-formed iff the answer is an expression: non-negative integer literals
//               (canonical decimal, 1..18 digits, no leading zero except "0"), binary + - * /,
//               parentheses (nested at most 64 deep), spaces between tokens; no unary minus.
//               Correct iff evaluate_countdown succeeds and the value equals the target:
//               exact int64 arithmetic, every intermediate an integer (a division that is not
//               exact, or by zero, makes the answer wrong - so "7/2*4" is wrong although it is
//               14 over the rationals), overflow makes it wrong, each literal must be one of the
//               given numbers and each given number is used at most as often as it is given
//               (multiset: if 5 is given twice it may appear twice); with countdown_use_all
//               (default, as TinyZero) each given number must be used exactly that often.
//   Reward: 1.0 iff finished and correct; else format_reward iff finished and well-formed; else
//   0. A correct answer without the end marker (truncated) gets 0: the policy must learn to stop.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace frugal {

class Schema;
class Config;

constexpr char kEndMarker = '\n';
constexpr int kTaskVocab = 128;
// Rng stream id of the task generator. Not in core/rng.hpp's Stream enum on purpose: the tasks
// own this id (well clear of the enum's values), sub-stream = split.
constexpr uint32_t kTaskStream = 32;

enum class TaskKind { arithmetic, countdown };
enum class Split : uint32_t { train = 0, eval = 1 };

struct TaskSettings {
  TaskKind kind = TaskKind::arithmetic;
  int min_digits = 1, max_digits = 2;  // arithmetic operands (1..9: products fit in 18 digits)
  std::string ops = "+-*";             // arithmetic operators, each at most once
  int countdown_numbers = 3, countdown_max_number = 20;  // 2..6 numbers, each in [1, max] (max <= 999)
  bool countdown_use_all = true;
  double format_reward = 0.0;  // reward of a finished, well-formed, wrong answer
  int eval_modulus = 8;        // eval iff fnv1a64(prompt) % eval_modulus == 0 (>= 2)
  uint64_t seed = 0;
};

struct Problem {
  std::string prompt;            // ends with '='
  std::string solution;          // a correct answer, without the end marker
  int64_t target = 0;            // arithmetic: the value; countdown: the target
  std::vector<int64_t> numbers;  // countdown's given numbers, ascending (empty for arithmetic)
};

// Throws frugal::Error naming the task.* key when a setting is out of range (make_problem calls it).
void check_task_settings(const TaskSettings& s);

// The problem `index` (0 <= index < 2^40) of a split; see the header comment for the rules.
Problem make_problem(const TaskSettings& s, Split split, int64_t index);

// FNV-1a, 64-bit: the fixed hash of the split rule.
uint64_t fnv1a64(std::string_view text);
// The split a prompt belongs to under the rule above.
Split split_of(const TaskSettings& s, std::string_view prompt);

// finished: contains kEndMarker. well_formed: the answer parses (see the header comment).
// correct: the answer is right, finished or not. reward: see the header comment.
struct Verdict {
  double reward = 0;
  bool finished = false, well_formed = false, correct = false;
};
Verdict score_completion(const TaskSettings& s, const Problem& p, std::string_view completion);

// The answer of a completion under the extraction rule; *finished (if non-null) says whether it
// contains the end marker. The view points into `completion`.
std::string_view extract_answer(std::string_view completion, bool* finished);

// Arithmetic answers: true iff `text` is a canonical decimal integer (see above); sets *value.
bool parse_integer_answer(std::string_view text, int64_t* value);

// Countdown: true iff `expr` is syntactically an expression (well-formed), whatever its value.
bool is_countdown_expression(std::string_view expr);
// Countdown: exact evaluation; false with a reason in *why (if non-null) on malformed input, a
// literal not given, a number used more often than given, an unused number (use_all), inexact
// division, division by zero or overflow. *value is set only on success.
bool evaluate_countdown(std::string_view expr, const std::vector<int64_t>& numbers, bool use_all, int64_t* value,
                        std::string* why);

// Longest prompt + solution + end marker over a task's settings (an upper bound the caller uses to
// size contexts).
int max_problem_chars(const TaskSettings& s);

const char* task_name(TaskKind kind);  // "arithmetic" | "countdown"

// Config: section [task]. task.name, task.min_digits, task.max_digits, task.ops,
// task.countdown_numbers, task.countdown_max_number, task.countdown_use_all, task.format_reward,
// task.eval_modulus.
void add_task_keys(Schema& schema);
// The settings of a resolved config, validated (check_task_settings). The problems are seeded by
// task.seed (default 1: the same problem set for every run.seed), or by `run_seed` when task.seed = 0.
TaskSettings task_settings_from(const Config& config, uint64_t run_seed);

}  // namespace frugal
