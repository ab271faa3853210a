// Import: customers, products and purchases from CSV or JSON Lines files (plain or .gz) into a
// Store, with validation (a bad row is reported with file, line and reason) and presets for
// known public shops. The rules of each preset are documented in docs/import.md.
//
// Atomicity: rows are written in batches, each one WriteBatch; a row is validated in full before
// it joins a batch, so a row is never half-written. A non-strict import that is interrupted can
// be re-run: events are deduplicated by event id and profile upserts are idempotent.
// A strict import reads the whole file first and writes nothing if any row is bad.
//
// Thread safety: the functions are reentrant; concurrent imports into one Store are safe but
// serialize on its write lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

enum class ImportKind { kCustomers, kProducts, kPurchases };
enum class ImportPreset {
  kOnlineRetail,     // UCI Online Retail (one CSV)
  kCompleteJourney,  // dunnhumby The Complete Journey (transactions and/or products CSV)
  kCdnow,            // the CDNOW sample of Fader, Hardie & Lee (whitespace-separated text)
};

// "customers" / "products" / "purchases" and back; InvalidArgument (field "kind") otherwise.
Result<ImportKind> ParseImportKind(std::string_view name);
// "online-retail" / "completejourney" / "cdnow"; InvalidArgument (field "preset") otherwise.
Result<ImportPreset> ParseImportPreset(std::string_view name);

// Progress of one file, reported about once a second and once at the end.
struct ImportProgress {
  std::string file;
  int64_t rows = 0;     // data rows read so far
  double fraction = 0;  // of the file's bytes consumed, [0, 1]
  double seconds = 0;   // since the file was opened
  bool done = false;
};

struct ImportOptions {
  // What the rows are (generic imports only; presets know their files). Default purchases.
  ImportKind kind = ImportKind::kPurchases;
  // Field -> source column (CSV header name or JSON key), from `--columns 'customer=userId,...'`.
  // Fields not listed are read from a column of the same name if the file has one. Fields per
  // kind (docs/import.md): purchases: customer*, product*, time*, quantity, price, event_id,
  // invoice, line, channel, type; products: product*, title, category, brand, price, tags,
  // created_at, available; customers: customer*, email, name, country, opted_out, interests,
  // created_at (* = required).
  std::map<std::string, std::string> columns;
  // Stop at the first bad row and write nothing from the file. Default false: skip and count.
  bool strict = false;
  // Parse and validate only; write nothing. Default false.
  bool dry_run = false;
  // CSV field delimiter. Default ','.
  char delimiter = ',';
  // Rows per WriteBatch. Larger is faster; each batch is one atomic write. Default 20000.
  int batch_size = 20000;
  // How many bad rows to keep in ImportReport::errors (all are counted). Default 20.
  int max_reported_errors = 20;
  // Called about once a second while a file is read, and once at its end. May be empty.
  std::function<void(const ImportProgress&)> on_progress;

  // InvalidArgument naming the field for batch_size < 1, max_reported_errors < 0, or a mapping
  // that names a field the kind does not have.
  Status Validate() const;
};

// Parses "field=column,field=column" into `columns`. InvalidArgument (field "columns") for an
// entry without '=' or with an empty side, or a field given twice.
Result<std::map<std::string, std::string>> ParseColumnMapping(std::string_view spec);

struct RowError {
  std::string file;
  int64_t line = 0;
  std::string reason;
  std::string ToString() const;  // "file:line: reason"
};

// What an import of one file did.
struct ImportReport {
  std::string file;
  std::string kind;      // "purchases", "products", "customers", or a preset file type
  int64_t rows = 0;      // data rows read
  int64_t accepted = 0;  // rows that passed validation and preset rules
  int64_t rejected = 0;  // malformed rows (see errors)
  std::map<std::string, int64_t> dropped;  // well-formed rows a preset rule leaves out, by reason
  int64_t events_written = 0;              // events newly stored
  int64_t duplicate_events = 0;            // events already stored (e.g. a re-import)
  int64_t forgotten_events = 0;  // events of forgotten customer ids, not stored (Store::Forget...)
  int64_t forgotten_profiles = 0;  // customer rows of forgotten ids, not stored
  int64_t new_customers = 0;
  int64_t new_products = 0;
  int64_t bytes_written = 0;     // key + value bytes of stored events and their index
  std::vector<RowError> errors;  // the first max_reported_errors bad rows
  double seconds = 0;
};

// Imports one file with the generic column mapping. Fails (nothing more written) on: invalid
// options; an unreadable file (IOError); a required field whose column is missing from the CSV
// header, or a mapped column that is missing (InvalidArgument naming it); under `strict`, the
// first bad row (InvalidArgument "file:line: reason"); a store write failure (IOError).
Result<ImportReport> ImportFile(Store& store, const std::string& path,
                                const ImportOptions& options);

// Imports the files of a preset, one report per file. For kCompleteJourney each file is
// recognized by its header (transactions or products); anything else is InvalidArgument.
// Uses strict, dry_run, batch_size, max_reported_errors and on_progress from `options`.
Result<std::vector<ImportReport>> ImportPresetFiles(Store& store, ImportPreset preset,
                                                    const std::vector<std::string>& paths,
                                                    const ImportOptions& options);

}  // namespace affinity
