// iALS model flags shared by the subcommands that train (evaluate, train): they fill IalsOptions
// (IalsOptionsJson in affinity/snapshot.h renders them for reports).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "affinity/evaluation.h"
#include "affinity/models/ials.h"
#include "affinity/snapshot.h"

namespace affinity::cli {

struct IalsFlags {
  IalsOptions options;
  std::string confidence = "log";
  std::string solver = "cg";
  CLI::Option* unobserved_weight_ = nullptr;
  CLI::Option* regularization_ = nullptr;

  // True if the user set --unobserved-weight or --regularization (then they are not tuned).
  bool explicit_weights() const {
    return (unobserved_weight_ && unobserved_weight_->count() > 0) ||
           (regularization_ && regularization_->count() > 0);
  }

  void Register(CLI::App* sub) {
    IalsOptions& o = options;
    sub->add_option("--factors", o.factors, "Embedding dimension")->capture_default_str();
    sub->add_option("--iterations", o.iterations, "ALS epochs")->capture_default_str();
    unobserved_weight_ = sub->add_option("--unobserved-weight", o.unobserved_weight,
                                         "alpha0: weight pulling every unobserved pair to 0 "
                                         "(tuned when not given)");
    unobserved_weight_->capture_default_str();
    sub->add_option("--popularity-exponent", o.unobserved_popularity_exponent,
                    "eta: unobserved weight of item i proportional to count_i^eta (0: uniform)")
        ->capture_default_str();
    regularization_ =
        sub->add_option("--regularization", o.regularization, "lambda (tuned when not given)");
    regularization_->capture_default_str();
    sub->add_option("--reg-exponent", o.regularization_exponent,
                    "nu: lambda scaled by (|I_u| + alpha0 |I|)^nu (0: plain lambda)")
        ->capture_default_str();
    sub->add_option("--alpha", o.confidence_alpha, "Confidence c = 1 + alpha f(r)")
        ->capture_default_str();
    sub->add_option("--confidence", confidence, "f: binary | log | linear")->capture_default_str();
    sub->add_option("--solver", solver, "cg | cholesky")->capture_default_str();
    sub->add_option("--cg-steps", o.cg_steps, "Conjugate-gradient steps per row and epoch")
        ->capture_default_str();
    sub->add_option("--init-stddev", o.init_stddev, "Initial factors ~ N(0, s / sqrt(d))")
        ->capture_default_str();
    sub->add_option("--seed", o.seed, "Random seed")->capture_default_str();
    sub->add_option("--threads", o.num_threads, "Threads (0 = all cores)")->capture_default_str();
  }

  // Copies the flags into `out`; InvalidArgument naming the flag for a bad value.
  Status Fill(IalsOptions* out) const {
    *out = options;
    if (confidence == "binary") {
      out->confidence = ConfidenceTransform::kBinary;
    } else if (confidence == "log") {
      out->confidence = ConfidenceTransform::kLog;
    } else if (confidence == "linear") {
      out->confidence = ConfidenceTransform::kLinear;
    } else {
      return Status::InvalidArgument("--confidence must be binary, log or linear", "confidence");
    }
    if (solver == "cg") {
      out->solver = IalsSolver::kConjugateGradient;
    } else if (solver == "cholesky") {
      out->solver = IalsSolver::kCholesky;
    } else {
      return Status::InvalidArgument("--solver must be cg or cholesky", "solver");
    }
    return out->Validate();
  }
};

// A tuning run (evaluation.h) for reports: the trials, the choice and the validation split.
inline nlohmann::json TuningJson(const TuningResult& t) {
  nlohmann::json trials = nlohmann::json::array();
  for (const auto& x : t.trials) {
    trials.push_back({{"unobserved_weight", x.unobserved_weight},
                      {"regularization", x.regularization},
                      {"validation_ndcg@20", x.ndcg20},
                      {"validation_recall@20", x.recall20},
                      {"seconds", x.seconds}});
  }
  return {{"trials", trials},
          {"chosen",
           {{"unobserved_weight", t.chosen.unobserved_weight},
            {"regularization", t.chosen.regularization}}},
          {"validation", t.validation},
          {"seconds", t.seconds}};
}

// Prints a tuning run's trials to stderr, one line each (the progress output).
inline void PrintTuningTrials(const TuningResult& t) {
  for (const auto& x : t.trials) {
    std::fprintf(stderr,
                 "tuning: unobserved_weight %g, regularization %g -> validation ndcg@20 %.4f, "
                 "recall@20 %.4f (%.1f s)\n",
                 x.unobserved_weight, x.regularization, x.ndcg20, x.recall20, x.seconds);
  }
}

}  // namespace affinity::cli
