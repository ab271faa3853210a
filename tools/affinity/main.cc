// affinity: the command-line front end. It parses flags into the library's option structs,
// calls the library and renders the result; no logic lives here.
#include <cstdio>
#include <exception>
#include <map>

#include "commands.h"

#ifndef AFFINITY_VERSION
#define AFFINITY_VERSION "0.0.0"
#endif

// jemalloc's options (read at start-up; MALLOC_CONF in the environment adds to them): back its
// memory with transparent huge pages where the kernel allows them (`madvise` mode included).
// The server's working set is a few large arrays read at random (customer and product vectors,
// index cells, per-customer purchase lists): with 4 KiB pages nearly every such read also misses
// the TLB. Measured on the 1M-customer load benchmark: audiences 560-690 -> 830-880 req/s.
extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks up.
const char* malloc_conf = "thp:always,metadata_thp:auto";
}

namespace affinity::cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "affinity: %s\n", status.ToString().c_str());
  return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace affinity::cli

int main(int argc, char** argv) {
  using namespace affinity::cli;
  CLI::App app{"Affinity: a recommendation and personalization engine for online shops.",
               "affinity"};
  app.set_version_flag("--version", std::string("affinity ") + AFFINITY_VERSION);
  app.require_subcommand(1);
  std::map<CLI::App*, Command> commands;
  for (auto reg :
       {RegisterImport, RegisterStats, RegisterInsights, RegisterTrain, RegisterServe,
        RegisterAudience, RegisterCampaign, RegisterEvaluate, RegisterDemoData, RegisterForget}) {
    Command command = reg(app);
    commands[app.get_subcommands({}).back()] = std::move(command);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  for (auto& [sub, command] : commands) {
    if (!sub->parsed()) continue;
    try {
      return command();
    } catch (const std::exception& e) {  // a bug: the library reports errors as Status
      std::fprintf(stderr, "affinity: internal error: %s\n", e.what());
      return 1;
    }
  }
  return 2;
}
