// Subcommands of the `affinity` CLI. Each Register* adds its subcommand to the app and returns
// the function to run when it was chosen; that function returns the process exit code:
// 0 success, 1 runtime failure (I/O, corrupt store), 2 bad input or usage.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "affinity/status.h"

namespace affinity::cli {

using Command = std::function<int()>;

Command RegisterImport(CLI::App& app);
Command RegisterStats(CLI::App& app);
Command RegisterDemoData(CLI::App& app);
Command RegisterInsights(CLI::App& app);
Command RegisterEvaluate(CLI::App& app);
Command RegisterTrain(CLI::App& app);
Command RegisterServe(CLI::App& app);
Command RegisterAudience(CLI::App& app);
Command RegisterCampaign(CLI::App& app);
Command RegisterForget(CLI::App& app);

// Prints "affinity: <status>" to stderr and returns the exit code for it.
int Fail(const Status& status);

// JSON text (indent -1: one line). Bytes that are not valid UTF-8 (e.g. a Latin-1 name in a
// store) become U+FFFD instead of throwing.
inline std::string Dump(const nlohmann::json& j, int indent = 2) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace affinity::cli
