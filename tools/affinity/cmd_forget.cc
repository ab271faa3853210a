// `affinity forget`: erase customers from a store and from its published snapshots, for an
// erasure request handled offline (docs/api.md, "Forgetting a customer", for the HTTP route).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "affinity/snapshot.h"
#include "affinity/store.h"
#include "affinity/types.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct ForgetFlags {
  std::string db;
  std::string snapshots;
  std::vector<std::string> customers;
  std::string customers_file;
  bool no_compact = false;
  bool allow_again = false;
  bool json = false;
  bool quiet = false;
};

// Reads one id per line (surrounding blanks and a leading byte-order mark trimmed, empty lines
// skipped) into `ids`. A line that cannot be an id is InvalidArgument naming the file and line;
// an unreadable file IOError.
Status ReadIds(const std::string& path, std::vector<std::string>* ids) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const std::string id = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    if (const std::string problem = ExternalIdProblem(id); !problem.empty()) {
      return Status::InvalidArgument(path + ":" + std::to_string(number) + ": the id " + problem,
                                     "customers-file");
    }
    ids->push_back(id);
  }
  if (in.bad()) return Status::IOError("cannot read " + path);
  return Status::Ok();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --allow-again: takes the forgotten mark off each id, so that the store takes it again.
int RunAllowAgain(const ForgetFlags& f, const std::vector<std::string>& ids) {
  if (f.db.empty()) return Fail(Status::InvalidArgument("--allow-again needs --db", "db"));
  StoreOptions options;
  options.create_if_missing = false;
  auto store = Store::Open(f.db, options);
  if (!store.ok()) return Fail(store.status());
  nlohmann::json customers = nlohmann::json::array();
  int64_t allowed = 0;
  bool failed = false;
  for (const std::string& id : ids) {
    const Status s = (*store)->AllowForgottenAgain(id);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      std::fprintf(stderr, "affinity: customer %s: %s\n", id.c_str(), s.ToString().c_str());
      failed = true;
    }
    nlohmann::json entry = {{"customer", id}, {"allowed_again", s.ok()}};
    if (!s.ok()) {
      entry["why"] = s.code() == StatusCode::kNotFound ? "not a forgotten id" : s.ToString();
    }
    customers.push_back(std::move(entry));
    allowed += s.ok();
  }
  if (f.json) {
    std::printf("%s\n", Dump({{"allowed_again", allowed}, {"customers", customers}}).c_str());
  } else {
    std::printf(
        "allowed %lld of %zu forgotten ids again (they are stored as new customers from "
        "now on)\n",
        static_cast<long long>(allowed), ids.size());
  }
  return failed ? 1 : 0;
}

int Run(const ForgetFlags& f) {
  if (f.db.empty() && f.snapshots.empty()) {
    return Fail(Status::InvalidArgument("give --db, --snapshots or both", "db"));
  }
  std::vector<std::string> ids = f.customers;
  if (!f.customers_file.empty()) {
    if (Status read = ReadIds(f.customers_file, &ids); !read.ok()) return Fail(read);
  }
  for (const std::string& id : f.customers) {
    if (const std::string problem = ExternalIdProblem(id); !problem.empty()) {
      return Fail(Status::InvalidArgument("--customer " + problem, "customer"));
    }
  }
  std::vector<int64_t> versions;
  if (!f.snapshots.empty()) {
    // A mistyped directory would otherwise "find the customers in no snapshot".
    std::error_code ec;
    if (!std::filesystem::is_directory(f.snapshots, ec)) {
      return Fail(Status::InvalidArgument("--snapshots " + f.snapshots + " is not a directory",
                                          "snapshots"));
    }
    auto listed = ListSnapshots(f.snapshots);
    if (!listed.ok()) return Fail(listed.status());
    if (listed->empty()) {
      return Fail(Status::InvalidArgument(
          "--snapshots " + f.snapshots + " holds no snapshot version (v000001, ...)", "snapshots"));
    }
    versions = std::move(*listed);
  }
  if (ids.empty()) {
    return Fail(
        Status::InvalidArgument("no customer to forget: give --customer or a non-empty "
                                "--customers-file",
                                "customer"));
  }
  {  // each once, in the order given
    std::unordered_set<std::string> seen;
    std::vector<std::string> unique;
    for (std::string& id : ids) {
      if (seen.insert(id).second) unique.push_back(std::move(id));
    }
    ids = std::move(unique);
  }
  if (f.allow_again) {
    if (!f.snapshots.empty()) {
      return Fail(Status::InvalidArgument("--allow-again takes --db only", "snapshots"));
    }
    return RunAllowAgain(f, ids);
  }
  auto say = [&](const char* format, auto... args) {
    if (!f.quiet) std::fprintf(stderr, format, args...);
  };

  nlohmann::json per_customer = nlohmann::json::object();
  for (const std::string& id : ids) {
    per_customer[id] = {
        {"customer", id}, {"store", nullptr}, {"snapshots", nlohmann::json::array()}};
  }
  nlohmann::json report = {{"compacted", false}};
  // Failures after the first deletion do not stop the run (what was deleted stays deleted, and
  // the rest is still worth doing): each is reported, and the exit code is then 1.
  nlohmann::json errors = nlohmann::json::array();
  auto failure = [&](const std::string& what, const Status& status) {
    std::fprintf(stderr, "affinity: %s: %s\n", what.c_str(), status.ToString().c_str());
    errors.push_back({{"what", what}, {"error", status.ToString()}});
  };

  if (!f.db.empty()) {
    StoreOptions options;
    options.create_if_missing = false;
    auto store = Store::Open(f.db, options);
    if (!store.ok()) {
      if (store.status().code() == StatusCode::kIOError &&
          store.status().message().find("lock") != std::string::npos) {
        std::fprintf(stderr,
                     "affinity: the store %s is in use by another process (is `affinity serve` "
                     "running on it?). Forget through that server (DELETE /v1/customers/{id}), "
                     "then run this with --snapshots only, or stop it first.\n",
                     f.db.c_str());
      }
      return Fail(store.status());
    }
    int64_t forgotten = 0;
    for (const std::string& id : ids) {
      auto receipt = (*store)->ForgetCustomer(id);
      nlohmann::json& entry = per_customer[id]["store"];
      if (!receipt.ok() && receipt.status().code() != StatusCode::kNotFound) {
        failure("customer " + id, receipt.status());
        entry = {{"forgotten", false}, {"why", receipt.status().ToString()}};
        continue;
      }
      if (!receipt.ok()) {
        // Not in the store: forgotten before, or not imported yet. Marked either way, so that
        // nothing of it is stored later.
        auto earlier = (*store)->IsForgotten(id);
        if (!earlier.ok()) {
          failure("customer " + id, earlier.status());
          entry = {{"forgotten", false}, {"why", earlier.status().ToString()}};
          continue;
        }
        if (!*earlier) {
          if (Status marked = (*store)->MarkForgotten(id); !marked.ok()) {
            failure("customer " + id, marked);
            entry = {{"forgotten", false}, {"why", marked.ToString()}};
            continue;
          }
        }
        const char* why = *earlier ? "forgotten before" : "not in the store; marked forgotten";
        entry = {{"forgotten", false}, {"why", why}};
        say("%s: %s\n", id.c_str(), why);
        continue;
      }
      ++forgotten;
      entry = {{"forgotten", true},
               {"events", receipt->events},
               {"profile", receipt->profile},
               {"notifications", receipt->notifications}};
      say("%s: forgotten from the store (%lld events, %s, %lld ledger entries)\n", id.c_str(),
          static_cast<long long>(receipt->events), receipt->profile ? "profile" : "no profile",
          static_cast<long long>(receipt->notifications));
    }
    // Also when nobody was forgotten now: customers forgotten earlier through the server may have
    // left records in the files (if its targeted erase failed).
    if (!f.no_compact) {
      say("compacting the store, so that the deleted records leave its files...\n");
      const auto start = std::chrono::steady_clock::now();
      if (Status compacted = (*store)->Compact(); !compacted.ok()) {
        failure("compacting the store", compacted);
      } else {
        report["compacted"] = true;
        report["compact_seconds"] = SecondsSince(start);
        say("compacted in %.1f s\n", report["compact_seconds"].get<double>());
      }
    }
  }

  nlohmann::json rewritten = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  const std::unordered_set<std::string> wanted(ids.begin(), ids.end());
  for (int64_t version : versions) {
    // Under the snapshot root's lock, version by version; one that fails is reported and the
    // others are still erased (the exit code is then 1: run it again).
    // (A training run publishing holds the root: wait for it.)
    auto found = ForgetInPublishedSnapshot(f.snapshots, version, wanted, /*wait_seconds=*/600);
    if (!found.ok()) {
      char name[32];
      std::snprintf(name, sizeof name, "snapshot v%06lld", static_cast<long long>(version));
      failure(name, found.status());
      failed.push_back({{"version", version}, {"error", found.status().ToString()}});
      continue;
    }
    if (found->empty()) continue;
    rewritten.push_back(version);
    for (const std::string& id : *found) per_customer[id]["snapshots"].push_back(version);
    say("snapshot v%06lld: removed %zu customer(s)\n", static_cast<long long>(version),
        found->size());
  }
  report["snapshots_scanned"] = versions.size();
  report["snapshots_failed"] = failed;
  report["errors"] = errors;
  report["snapshots_rewritten"] = rewritten;
  nlohmann::json customers = nlohmann::json::array();
  for (const std::string& id : ids) customers.push_back(per_customer[id]);
  report["customers"] = std::move(customers);
  if (f.json) {
    std::printf("%s\n", Dump(report).c_str());
  } else {
    int64_t in_store = 0, nowhere = 0;
    for (const std::string& id : ids) {
      const nlohmann::json& c = per_customer[id];
      const bool stored = c["store"].is_object() && c["store"]["forgotten"].get<bool>();
      in_store += stored;
      nowhere += !stored && c["snapshots"].empty();
    }
    std::printf("forgot %lld of %zu customers in the store%s; rewrote %zu of %zu snapshot(s)%s\n",
                static_cast<long long>(in_store), ids.size(), f.db.empty() ? " (not asked)" : "",
                rewritten.size(), versions.size(), f.snapshots.empty() ? " (not asked)" : "");
    if (!errors.empty()) {
      std::printf("%zu step(s) failed (above): run this again\n", errors.size());
    }
    if (nowhere > 0) {
      std::printf("%lld customers were found nowhere asked (already forgotten, or never known)%s\n",
                  static_cast<long long>(nowhere),
                  f.db.empty() ? "" : "; their ids are marked forgotten in the store");
    }
  }
  return errors.empty() ? 0 : 1;
}

}  // namespace

Command RegisterForget(CLI::App& app) {
  auto f = std::make_shared<ForgetFlags>();
  CLI::App* sub = app.add_subcommand(
      "forget",
      "Erase customers: from the store (their events, profile, ids and campaign letters; then the "
      "store is compacted so that the deleted records leave its files) and from every published "
      "snapshot (id, factor row, insights row). A forgotten id is not stored again (a re-import "
      "skips its rows) until --allow-again. The store must not be open in a server: forget "
      "through DELETE /v1/customers/{id} there, and run this with --snapshots only.");
  sub->add_option("--db", f->db, "Store directory (needs the store's write lock)");
  sub->add_option("--snapshots", f->snapshots,
                  "Snapshot directory: every version holding one of them is rewritten");
  sub->add_option("--customer", f->customers, "External customer id (repeatable)");
  sub->add_option("--customers-file", f->customers_file,
                  "File of external customer ids, one per line");
  sub->add_flag("--no-compact", f->no_compact,
                "Leave the store's files as they are (the deleted records stay in them until "
                "RocksDB compacts them on its own, or the next affinity serve on the store "
                "compacts it)");
  sub->add_flag("--allow-again", f->allow_again,
                "Instead of forgetting: let these forgotten ids be stored again (the person came "
                "back and agreed); they come back as new customers, with nothing of before");
  sub->add_flag("--json", f->json, "Print a JSON report");
  sub->add_flag("-q,--quiet", f->quiet, "No progress on stderr");
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli
