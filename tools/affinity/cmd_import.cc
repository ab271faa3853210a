#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "affinity/import.h"
#include "affinity/store.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct ImportFlags {
  std::string db;
  std::string preset;
  std::string kind = "purchases";
  std::string columns;
  std::vector<std::string> files;
  bool strict = false;
  bool dry_run = false;
  bool sync = false;
  bool json = false;
  bool quiet = false;
  char delimiter = ',';
  int batch_size = 20000;
};

void PrintProgress(const ImportProgress& p) {
  double rate = p.seconds > 0 ? static_cast<double>(p.rows) / p.seconds : 0;
  bool tty = isatty(STDERR_FILENO) != 0;
  if (p.done) {
    std::fprintf(stderr, "%s%s: %lld rows in %.1f s (%.0f rows/s)\n", tty ? "\r\033[K" : "",
                 p.file.c_str(), static_cast<long long>(p.rows), p.seconds, rate);
    return;
  }
  double eta = p.fraction > 0 ? p.seconds * (1 - p.fraction) / p.fraction : 0;
  std::fprintf(stderr, "%s%s: %lld rows, %.0f%%, %.0f rows/s, ETA %.0f s%s", tty ? "\r\033[K" : "",
               p.file.c_str(), static_cast<long long>(p.rows), 100 * p.fraction, rate,
               std::ceil(eta), tty ? "" : "\n");
}

nlohmann::json ReportJson(const ImportReport& r) {
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& e : r.errors) {
    errors.push_back({{"file", e.file}, {"line", e.line}, {"reason", e.reason}});
  }
  return {{"file", r.file},
          {"kind", r.kind},
          {"rows", r.rows},
          {"accepted", r.accepted},
          {"rejected", r.rejected},
          {"dropped", r.dropped},
          {"events_written", r.events_written},
          {"duplicate_events", r.duplicate_events},
          {"forgotten_events", r.forgotten_events},
          {"forgotten_profiles", r.forgotten_profiles},
          {"new_customers", r.new_customers},
          {"new_products", r.new_products},
          {"bytes_written", r.bytes_written},
          {"seconds", r.seconds},
          {"rows_per_second", r.seconds > 0 ? static_cast<double>(r.rows) / r.seconds : 0.0},
          {"errors", errors}};
}

void PrintReport(const ImportReport& r) {
  std::printf("%s (%s)\n", r.file.c_str(), r.kind.c_str());
  std::printf("  rows read          %lld\n", static_cast<long long>(r.rows));
  std::printf("  accepted           %lld\n", static_cast<long long>(r.accepted));
  for (const auto& [reason, n] : r.dropped) {
    std::printf("  dropped: %-9s %lld\n", reason.c_str(), static_cast<long long>(n));
  }
  std::printf("  rejected           %lld\n", static_cast<long long>(r.rejected));
  std::printf("  events written     %lld (%lld already stored)\n",
              static_cast<long long>(r.events_written), static_cast<long long>(r.duplicate_events));
  if (r.forgotten_events > 0 || r.forgotten_profiles > 0) {
    std::printf("  forgotten ids      %lld events, %lld profiles not stored (affinity forget)\n",
                static_cast<long long>(r.forgotten_events),
                static_cast<long long>(r.forgotten_profiles));
  }
  std::printf("  new customers      %lld\n", static_cast<long long>(r.new_customers));
  std::printf("  new products       %lld\n", static_cast<long long>(r.new_products));
  std::printf("  time               %.2f s (%.0f rows/s)\n", r.seconds,
              r.seconds > 0 ? static_cast<double>(r.rows) / r.seconds : 0.0);
  for (const auto& e : r.errors) std::printf("  error: %s\n", e.ToString().c_str());
  if (r.rejected > static_cast<int64_t>(r.errors.size())) {
    std::printf("  ... and %lld more bad rows\n",
                static_cast<long long>(r.rejected - static_cast<int64_t>(r.errors.size())));
  }
}

int Run(const ImportFlags& f) {
  ImportOptions options;
  options.strict = f.strict;
  options.dry_run = f.dry_run;
  options.delimiter = f.delimiter;
  options.batch_size = f.batch_size;
  if (!f.quiet) options.on_progress = PrintProgress;
  if (f.preset.empty()) {
    auto kind = ParseImportKind(f.kind);
    if (!kind.ok()) return Fail(kind.status());
    options.kind = *kind;
    auto columns = ParseColumnMapping(f.columns);
    if (!columns.ok()) return Fail(columns.status());
    options.columns = std::move(*columns);
  }
  if (Status s = options.Validate(); !s.ok()) return Fail(s);

  StoreOptions store_options;
  store_options.sync_writes = f.sync;
  auto store = Store::Open(f.db, store_options);
  if (!store.ok()) return Fail(store.status());

  std::vector<ImportReport> reports;
  if (!f.preset.empty()) {
    auto preset = ParseImportPreset(f.preset);
    if (!preset.ok()) return Fail(preset.status());
    auto r = ImportPresetFiles(**store, *preset, f.files, options);
    if (!r.ok()) return Fail(r.status());
    reports = std::move(*r);
  } else {
    for (const auto& file : f.files) {
      auto r = ImportFile(**store, file, options);
      if (!r.ok()) return Fail(r.status());
      reports.push_back(std::move(*r));
    }
  }
  if (Status s = (*store)->Flush(); !s.ok()) return Fail(s);

  if (f.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : reports) out.push_back(ReportJson(r));
    std::printf("%s\n", Dump(nlohmann::json{{"files", out}, {"dry_run", f.dry_run}}).c_str());
  } else {
    for (const auto& r : reports) PrintReport(r);
    if (f.dry_run) std::printf("dry run: nothing was written\n");
  }
  return 0;
}

}  // namespace

Command RegisterImport(CLI::App& app) {
  auto flags = std::make_shared<ImportFlags>();
  CLI::App* sub = app.add_subcommand(
      "import",
      "Import customers, products or purchases (CSV or JSON Lines, plain or .gz) into a store.\n"
      "Generic: --kind K [--columns 'field=column,...']; or a preset for a known public shop.\n"
      "Column fields and preset rules: docs/import.md. Re-importing a file changes nothing.");
  sub->add_option("--db", flags->db, "Store directory (created if missing)")->required();
  sub->add_option("--preset", flags->preset, "online-retail | completejourney | cdnow");
  sub->add_option("--kind", flags->kind, "customers | products | purchases (generic import)")
      ->capture_default_str();
  sub->add_option("--columns", flags->columns,
                  "Field-to-column mapping, e.g. 'customer=userId,product=movieId,time=timestamp'."
                  " Unmapped fields are read from a column of the same name.");
  sub->add_option("--delimiter", flags->delimiter, "CSV field delimiter")->capture_default_str();
  sub->add_option("--batch-size", flags->batch_size, "Rows per atomic write batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_flag("--strict", flags->strict,
                "Stop at the first bad row (exit 2) and write nothing from that file");
  sub->add_flag("--dry-run", flags->dry_run, "Validate and report only; write nothing");
  sub->add_flag("--sync", flags->sync, "fsync each batch (survives power loss; slower)");
  sub->add_flag("--json", flags->json, "Print the report as JSON");
  sub->add_flag("-q,--quiet", flags->quiet, "No progress output");
  sub->add_option("files", flags->files, "Input files")->required();
  sub->get_option("--preset")->excludes("--kind")->excludes("--columns");
  return [flags] { return Run(*flags); };
}

}  // namespace affinity::cli
