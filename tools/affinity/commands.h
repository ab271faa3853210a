// Subcommands of the `affinity` CLI. Each Register* adds its subcommand to the app and returns
// the function to run when it was chosen; that function returns the process exit code:
// 0 success, 1 runtime failure (I/O, corrupt store), 2 bad input or usage.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
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

// Prints "affinity: <status>" to stderr and returns the exit code for it.
int Fail(const Status& status);

}  // namespace affinity::cli
