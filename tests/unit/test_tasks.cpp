// RLVR tasks: answer extraction, the arithmetic and countdown verifiers on hand-made completions,
// deterministic generation, disjoint train/eval splits, and the [task] config section.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "test_util.hpp"
#include "rlvr/tasks.hpp"

using namespace frugal;

namespace {

TaskSettings arithmetic_settings() {
  TaskSettings s;
  s.kind = TaskKind::arithmetic;
  return s;
}

TaskSettings countdown_settings() {
  TaskSettings s;
  s.kind = TaskKind::countdown;
  return s;
}

Problem arithmetic_problem(const std::string& prompt, int64_t value) {
  Problem p;
  p.prompt = prompt;
  p.target = value;
  p.solution = std::to_string(value);
  return p;
}

Problem countdown_problem(std::vector<int64_t> numbers, int64_t target) {
  Problem p;
  p.numbers = std::move(numbers);
  p.target = target;
  return p;
}

// Asserts every field of a verdict.
void expect_verdict(const Verdict& v, double reward, bool finished, bool well_formed, bool correct,
                    const std::string& what) {
  EXPECT_DOUBLE_EQ(v.reward, reward) << what;
  EXPECT_EQ(v.finished, finished) << what;
  EXPECT_EQ(v.well_formed, well_formed) << what;
  EXPECT_EQ(v.correct, correct) << what;
}

std::string why_of(std::string_view expr, const std::vector<int64_t>& numbers, bool use_all) {
  std::string why;
  int64_t value = 0;
  EXPECT_FALSE(evaluate_countdown(expr, numbers, use_all, &value, &why)) << expr;
  return why;
}

}  // namespace

TEST(TaskExtract, FirstMarkerLastEqualsAndTrim) {
  bool finished = false;
  EXPECT_EQ(extract_answer("46\n", &finished), "46");
  EXPECT_TRUE(finished);
  EXPECT_EQ(extract_answer("46", &finished), "46");
  EXPECT_FALSE(finished);
  EXPECT_EQ(extract_answer("46\nfoo=3\n", &finished), "46");
  EXPECT_TRUE(finished);
  EXPECT_EQ(extract_answer("1=2=  7 \n", &finished), "7");
  EXPECT_EQ(extract_answer("  3*5+7\t\r\n", &finished), "3*5+7");
  EXPECT_EQ(extract_answer("12+34=", &finished), "");
  EXPECT_FALSE(finished);
  EXPECT_EQ(extract_answer("", nullptr), "");
}

TEST(TaskArithmetic, HandMadeVerdicts) {
  const TaskSettings s = arithmetic_settings();
  const Problem p = arithmetic_problem("12+34=", 46);
  expect_verdict(score_completion(s, p, "46\n"), 1.0, true, true, true, "correct");
  expect_verdict(score_completion(s, p, "45\n"), 0.0, true, true, false, "wrong");
  expect_verdict(score_completion(s, p, "46"), 0.0, false, true, true, "correct but truncated");
  expect_verdict(score_completion(s, p, "46\nfoo"), 1.0, true, true, true, "text after the marker is ignored");
  expect_verdict(score_completion(s, p, "12+34=46\n"), 1.0, true, true, true, "after the last '='");
  expect_verdict(score_completion(s, p, " 46 \n"), 1.0, true, true, true, "trimmed");
  expect_verdict(score_completion(s, p, "4a6\n"), 0.0, true, false, false, "malformed");
  expect_verdict(score_completion(s, p, "\n"), 0.0, true, false, false, "empty");
  expect_verdict(score_completion(s, p, "--3\n"), 0.0, true, false, false, "double minus");
  expect_verdict(score_completion(s, p, "+46\n"), 0.0, true, false, false, "no '+'");
  expect_verdict(score_completion(s, p, "046\n"), 0.0, true, false, false, "leading zero");
  expect_verdict(score_completion(s, p, "4 6\n"), 0.0, true, false, false, "inner space");
  expect_verdict(score_completion(s, p, "9999999999999999999999999\n"), 0.0, true, false, false, "25 digits");
  expect_verdict(score_completion(s, p, "46\n\n"), 1.0, true, true, true, "two markers");
}

TEST(TaskArithmetic, NegativeAndZeroAnswers) {
  const TaskSettings s = arithmetic_settings();
  const Problem p = arithmetic_problem("3-10=", -7);
  expect_verdict(score_completion(s, p, "-7\n"), 1.0, true, true, true, "negative");
  expect_verdict(score_completion(s, p, "7\n"), 0.0, true, true, false, "sign missing");
  expect_verdict(score_completion(s, p, "- 7\n"), 0.0, true, false, false, "space after the sign");
  const Problem z = arithmetic_problem("5-5=", 0);
  expect_verdict(score_completion(s, z, "0\n"), 1.0, true, true, true, "zero");
  expect_verdict(score_completion(s, z, "-0\n"), 0.0, true, false, false, "-0 is not canonical");
  int64_t v = 0;
  EXPECT_TRUE(parse_integer_answer("-999999999999999999", &v));  // 18 digits: the longest accepted
  EXPECT_EQ(v, -999999999999999999);
  EXPECT_FALSE(parse_integer_answer("1000000000000000000", &v));  // 19 digits
  EXPECT_FALSE(parse_integer_answer("-", &v));
}

TEST(TaskArithmetic, FormatReward) {
  TaskSettings s = arithmetic_settings();
  s.format_reward = 0.1;
  const Problem p = arithmetic_problem("12+34=", 46);
  expect_verdict(score_completion(s, p, "45\n"), 0.1, true, true, false, "finished, well-formed, wrong");
  expect_verdict(score_completion(s, p, "46\n"), 1.0, true, true, true, "correct");
  expect_verdict(score_completion(s, p, "4a6\n"), 0.0, true, false, false, "malformed");
  expect_verdict(score_completion(s, p, "45"), 0.0, false, true, false, "unfinished");
}

TEST(TaskCountdown, HandMadeVerdicts) {
  const TaskSettings s = countdown_settings();
  const Problem p = countdown_problem({3, 5, 7}, 22);
  expect_verdict(score_completion(s, p, "3*5+7\n"), 1.0, true, true, true, "3*5+7");
  expect_verdict(score_completion(s, p, "7+3*5\n"), 1.0, true, true, true, "7+3*5");
  expect_verdict(score_completion(s, p, " (7 + (3*5)) \n"), 1.0, true, true, true, "spaces and redundant parentheses");
  expect_verdict(score_completion(s, p, "3*5+7"), 0.0, false, true, true, "truncated");
  expect_verdict(score_completion(s, p, "(3+5)*7\n"), 0.0, true, true, false, "wrong value");
  expect_verdict(score_completion(s, p, "3*5+7+7\n"), 0.0, true, true, false, "7 reused");
  expect_verdict(score_completion(s, p, "5*5-3\n"), 0.0, true, true, false, "5 reused");
  expect_verdict(score_completion(s, p, "2*11\n"), 0.0, true, true, false, "literals not given");
  expect_verdict(score_completion(s, p, "7/0+3*5\n"), 0.0, true, true, false, "division by zero");
  expect_verdict(score_completion(s, p, "7/3+5\n"), 0.0, true, true, false, "inexact division");
  expect_verdict(score_completion(s, p, "3*5\n"), 0.0, true, true, false, "not all numbers used");
  expect_verdict(score_completion(s, p, "99999999999999999999\n"), 0.0, true, false, false, "huge literal");
  expect_verdict(score_completion(s, p, "(3*5+7\n"), 0.0, true, false, false, "unbalanced '('");
  expect_verdict(score_completion(s, p, "3*5+7)\n"), 0.0, true, false, false, "unbalanced ')'");
  expect_verdict(score_completion(s, p, "-3+5*5\n"), 0.0, true, false, false, "unary minus");
  expect_verdict(score_completion(s, p, "3*5+\n"), 0.0, true, false, false, "dangling operator");
  expect_verdict(score_completion(s, p, "3 5\n"), 0.0, true, false, false, "two literals");
  expect_verdict(score_completion(s, p, "3*05+7\n"), 0.0, true, false, false, "leading zero");
  expect_verdict(score_completion(s, p, "3x5+7\n"), 0.0, true, false, false, "foreign character");
  expect_verdict(score_completion(s, p, "\n"), 0.0, true, false, false, "empty");
  expect_verdict(score_completion(s, p, "3*5+7=22\n"), 0.0, true, true, false, "the answer is after the last '='");
  expect_verdict(score_completion(s, p, "22=3*5+7\n"), 1.0, true, true, true, "... which may be the expression");
  expect_verdict(score_completion(s, p, std::string(100000, '(') + "3*5+7\n"), 0.0, true, false, false, "deep nesting");
  expect_verdict(score_completion(s, p, std::string(64, '(') + "3*5+7" + std::string(64, ')') + "\n"), 1.0, true,
                 true, true, "64 deep is fine");
}

TEST(TaskCountdown, FormatRewardAndUseAll) {
  TaskSettings s = countdown_settings();
  s.format_reward = 0.1;
  const Problem p = countdown_problem({3, 5, 7}, 22);
  expect_verdict(score_completion(s, p, "(3+5)*7\n"), 0.1, true, true, false, "well-formed wrong");
  expect_verdict(score_completion(s, p, "3*5\n"), 0.1, true, true, false, "unused number");
  expect_verdict(score_completion(s, p, "3*/5\n"), 0.0, true, false, false, "malformed");
  s.countdown_use_all = false;
  s.format_reward = 0;
  expect_verdict(score_completion(s, p, "3*5\n"), 0.0, true, true, false, "15 != 22");
  const Problem q = countdown_problem({3, 5, 7}, 15);
  expect_verdict(score_completion(s, q, "3*5\n"), 1.0, true, true, true, "subset, use_all = false");
  const Problem d = countdown_problem({2, 5, 5}, 10);
  expect_verdict(score_completion(s, d, "5+5\n"), 1.0, true, true, true, "a duplicate given twice, used twice");
  expect_verdict(score_completion(s, d, "5+5+5-5\n"), 0.0, true, true, false, "used three times");
  s.countdown_use_all = true;
  expect_verdict(score_completion(s, d, "5+5\n"), 0.0, true, true, false, "2 unused");
  expect_verdict(score_completion(s, d, "5*2/5*5\n"), 0.0, true, true, false, "=10 but 5 three times");
  expect_verdict(score_completion(s, countdown_problem({2, 5, 5}, 12), "5+5+2\n"), 1.0, true, true, true, "all used");
}

TEST(TaskCountdown, EvaluateReasonsAndValues) {
  int64_t v = 0;
  std::string why;
  ASSERT_TRUE(evaluate_countdown("3*5", {3, 5, 7}, false, &v, &why));
  EXPECT_EQ(v, 15);
  ASSERT_TRUE(evaluate_countdown("7-(3-5)", {3, 5, 7}, true, &v, &why));
  EXPECT_EQ(v, 9);
  ASSERT_TRUE(evaluate_countdown("3-5*7", {3, 5, 7}, true, &v, &why));
  EXPECT_EQ(v, -32);
  ASSERT_TRUE(evaluate_countdown("20/5/2", {2, 5, 20}, true, &v, &why));  // left to right: (20/5)/2
  EXPECT_EQ(v, 2);
  ASSERT_TRUE(evaluate_countdown("20/(5-3)", {3, 5, 20}, true, &v, &why));
  EXPECT_EQ(v, 10);
  EXPECT_NE(why_of("3*5", {3, 5, 7}, true).find("not used"), std::string::npos);
  EXPECT_NE(why_of("7/(5-5)", {5, 5, 7}, true).find("division by zero"), std::string::npos);
  EXPECT_NE(why_of("7/3+5", {3, 5, 7}, true).find("inexact"), std::string::npos);
  EXPECT_NE(why_of("7/2*4", {2, 4, 7}, true).find("inexact"), std::string::npos);  // 14 over the rationals
  EXPECT_NE(why_of("5*5-3", {3, 5, 7}, false).find("more often"), std::string::npos);
  EXPECT_NE(why_of("7/0+3*5", {3, 5, 7}, false).find("not a given"), std::string::npos);
  EXPECT_NE(why_of("99999999999999999999", {3, 5, 7}, false).find("malformed"), std::string::npos);
  EXPECT_NE(why_of("(3+5", {3, 5}, false).find("malformed"), std::string::npos);
  EXPECT_NE(why_of("3+5)", {3, 5}, false).find("unbalanced"), std::string::npos);
  // Overflow is a wrong answer, not a crash; 18-digit literals are the longest accepted.
  const int64_t big = 999999999999999999;
  EXPECT_NE(why_of("999999999999999999*999999999999999999", {big, big}, true).find("overflow"), std::string::npos);
  EXPECT_NE(why_of("999999999999999999+999999999999999999*999999999999999999", {big, big, big}, true).find("overflow"),
            std::string::npos);
  ASSERT_TRUE(evaluate_countdown("999999999999999999-999999999999999999", {big, big}, true, &v, &why));
  EXPECT_EQ(v, 0);
  // A malformed expression is reported as malformed even when its arithmetic fails first.
  EXPECT_NE(why_of("7/0+", {0, 7}, false).find("malformed"), std::string::npos);
  EXPECT_TRUE(is_countdown_expression("1+2"));
  EXPECT_TRUE(is_countdown_expression("0"));
  EXPECT_FALSE(is_countdown_expression("()"));
  EXPECT_FALSE(is_countdown_expression("1+2)("));
}

namespace {

// Checks every property of one generated problem (gtest assertions).
void check_generated(const TaskSettings& s, const Problem& p, int bound) {
  ASSERT_FALSE(p.prompt.empty());
  EXPECT_EQ(p.prompt.back(), '=') << p.prompt;
  for (const char c : p.prompt + p.solution) {
    ASSERT_GE(int(c), 32) << p.prompt;
    ASSERT_LT(int(c), 127) << p.prompt;
    ASSERT_LT(int(c), kTaskVocab);
  }
  EXPECT_LE(int(p.prompt.size() + p.solution.size()) + 1, bound) << p.prompt << p.solution;
  const Verdict v = score_completion(s, p, p.solution + kEndMarker);
  EXPECT_EQ(v.reward, 1.0) << p.prompt << p.solution;
  if (s.kind == TaskKind::countdown) {
    EXPECT_EQ(int(p.numbers.size()), s.countdown_numbers);
    for (const int64_t n : p.numbers) {
      EXPECT_GE(n, 1);
      EXPECT_LE(n, s.countdown_max_number);
    }
    EXPECT_GE(p.target, 1);
    EXPECT_LE(p.target, 999);
  }
}

std::vector<TaskSettings> generation_settings() {
  std::vector<TaskSettings> all;
  TaskSettings a = arithmetic_settings();
  a.seed = 7;
  all.push_back(a);
  a.min_digits = 2;
  a.max_digits = 3;
  all.push_back(a);
  a.min_digits = 1;
  a.max_digits = 9;
  a.ops = "*-";
  all.push_back(a);
  TaskSettings c = countdown_settings();
  c.seed = 7;
  all.push_back(c);
  c.countdown_numbers = 4;
  c.countdown_max_number = 100;
  all.push_back(c);
  c.countdown_numbers = 6;
  c.countdown_max_number = 999;
  all.push_back(c);
  return all;
}

}  // namespace

TEST(TaskGeneration, SolutionsScoreOneAndFitTheBound) {
  for (const TaskSettings& s : generation_settings()) {
    const int bound = max_problem_chars(s);
    for (const Split split : {Split::train, Split::eval})
      for (int64_t i = 0; i < 500; i++) {
        const Problem p = make_problem(s, split, i);
        check_generated(s, p, bound);
        EXPECT_EQ(split_of(s, p.prompt), split);
        if (::testing::Test::HasFailure()) return;
      }
  }
}

TEST(TaskGeneration, PromptFormats) {
  TaskSettings a = arithmetic_settings();
  a.ops = "+";
  const Problem p = make_problem(a, Split::train, 0);
  const size_t plus = p.prompt.find('+');
  ASSERT_NE(plus, std::string::npos);
  EXPECT_EQ(std::to_string(std::stoll(p.prompt.substr(0, plus)) + std::stoll(p.prompt.substr(plus + 1))), p.solution);
  const Problem c = make_problem(countdown_settings(), Split::train, 0);
  std::string expect;
  for (size_t i = 0; i < c.numbers.size(); i++) {
    if (i > 0) expect += ',';
    expect += std::to_string(c.numbers[i]);
  }
  EXPECT_EQ(c.prompt, expect + ">" + std::to_string(c.target) + "=");
  EXPECT_TRUE(std::is_sorted(c.numbers.begin(), c.numbers.end()));
}

TEST(TaskGeneration, Deterministic) {
  for (const TaskSettings& s : generation_settings()) {
    TaskSettings other = s;
    other.seed = s.seed + 1;
    int differ = 0;
    for (int64_t i = 0; i < 50; i++) {
      const Problem a = make_problem(s, Split::train, i), b = make_problem(s, Split::train, i);
      EXPECT_EQ(a.prompt, b.prompt);
      EXPECT_EQ(a.solution, b.solution);
      EXPECT_EQ(a.target, b.target);
      EXPECT_EQ(a.numbers, b.numbers);
      differ += make_problem(other, Split::train, i).prompt != a.prompt;
    }
    EXPECT_GT(differ, 40) << "another seed gives other problems";
    // Indices far apart are valid and independent of one another.
    EXPECT_EQ(make_problem(s, Split::eval, (int64_t{1} << 40) - 1).prompt,
              make_problem(s, Split::eval, (int64_t{1} << 40) - 1).prompt);
  }
  EXPECT_NE(error_of([] { make_problem(TaskSettings{}, Split::train, -1); }).find("index"), std::string::npos);
  EXPECT_NE(error_of([] { make_problem(TaskSettings{}, Split::train, int64_t{1} << 40); }).find("index"),
            std::string::npos);
}

TEST(TaskGeneration, TrainAndEvalAreDisjoint) {
  for (const TaskSettings& s : {arithmetic_settings(), countdown_settings()}) {
    std::set<std::string> train, eval;
    for (int64_t i = 0; i < 2000; i++) {
      train.insert(make_problem(s, Split::train, i).prompt);
      eval.insert(make_problem(s, Split::eval, i).prompt);
    }
    for (const std::string& e : eval) EXPECT_EQ(train.count(e), 0u) << e;
    EXPECT_GT(train.size(), 1000u);  // varied, not one problem repeated
    EXPECT_GT(eval.size(), 300u);
  }
}

TEST(TaskGeneration, TinySpaceStillHasBothSplits) {
  TaskSettings s = arithmetic_settings();
  s.max_digits = 1;
  s.ops = "+";  // 100 prompts
  std::set<std::string> eval;
  for (int64_t i = 0; i < 200; i++) eval.insert(make_problem(s, Split::eval, i).prompt);
  EXPECT_LT(eval.size(), 50u);  // about one in eight of the 100
}

TEST(TaskConfig, KeysAndValidation) {
  Schema schema;
  add_task_keys(schema);
  const TaskSettings d = task_settings_from(resolve_config(schema, "", {}), 3);
  EXPECT_EQ(d.kind, TaskKind::arithmetic);
  EXPECT_EQ(d.min_digits, 1);
  EXPECT_EQ(d.max_digits, 2);
  EXPECT_EQ(d.ops, "+-*");
  EXPECT_EQ(d.countdown_numbers, 3);
  EXPECT_EQ(d.countdown_max_number, 20);
  EXPECT_TRUE(d.countdown_use_all);
  EXPECT_EQ(d.format_reward, 0.0);
  EXPECT_EQ(d.eval_modulus, 8);
  EXPECT_EQ(d.seed, 1u);  // task.seed: one problem set whatever the run's seed
  EXPECT_EQ(task_settings_from(resolve_config(schema, "", {"--task.seed=0"}), 3).seed, 3u);  // 0: the run's seed
  EXPECT_EQ(task_settings_from(resolve_config(schema, "", {"--task.seed=42"}), 3).seed, 42u);

  const TaskSettings c = task_settings_from(
      resolve_config(schema, "",
                     {"--task.name=countdown", "--task.countdown_numbers=4", "--task.countdown_use_all=false",
                      "--task.format_reward=0.1", "--task.ops=*"}),
      5);
  EXPECT_EQ(c.kind, TaskKind::countdown);
  EXPECT_EQ(c.countdown_numbers, 4);
  EXPECT_FALSE(c.countdown_use_all);
  EXPECT_DOUBLE_EQ(c.format_reward, 0.1);
  EXPECT_EQ(c.ops, "*");

  const auto error_for = [&](std::vector<std::string> overrides) {
    return error_of([&] { task_settings_from(resolve_config(schema, "", overrides), 0); });
  };
  EXPECT_NE(error_for({"--task.ops=+/"}).find("task.ops"), std::string::npos);
  EXPECT_NE(error_for({"--task.ops="}).find("task.ops"), std::string::npos);
  EXPECT_NE(error_for({"--task.ops=++"}).find("task.ops"), std::string::npos);
  EXPECT_NE(error_for({"--task.min_digits=3", "--task.max_digits=2"}).find("task.min_digits"), std::string::npos);
  EXPECT_NE(error_for({"--task.max_digits=10"}).find("task.max_digits"), std::string::npos);
  EXPECT_NE(error_for({"--task.name=sudoku"}).find("task.name"), std::string::npos);
  EXPECT_NE(error_for({"--task.eval_modulus=1"}).find("task.eval_modulus"), std::string::npos);

  // Settings built in code are checked by make_problem with the same messages.
  TaskSettings bad;
  bad.ops = "/";
  EXPECT_NE(error_of([&] { make_problem(bad, Split::train, 0); }).find("task.ops"), std::string::npos);
}
