// Readers for import files: CSV (RFC 4180 quoting, multi-line quoted fields) and JSON Lines,
// plain or gzip-compressed (detected from the content by zlib, not from the name).
//
// Internal to the engine (tests include it directly). Not thread-safe; one reader per file.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "affinity/status.h"

namespace affinity {

// Reads physical lines (without the trailing "\n" or "\r\n") from a plain or .gz file.
class LineReader {
 public:
  // IOError naming the path if it cannot be opened.
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();

  // Reads the next line into *line. Returns false at end of file; IOError on a read error
  // (including a truncated or corrupt .gz stream).
  Result<bool> Next(std::string* line);
  // 1-based number of the line last returned.
  int64_t line_number() const { return line_number_; }
  // Fraction of the (compressed) file consumed so far, in [0, 1].
  double progress() const;
  const std::string& path() const { return path_; }

 private:
  LineReader(std::string path, gzFile file, int64_t size);
  std::string path_;
  gzFile file_;
  int64_t size_;
  int64_t line_number_ = 0;
  std::vector<char> buffer_;
};

// A source of records with named columns. Column names are resolved to indexes once.
class RowSource {
 public:
  virtual ~RowSource() = default;
  // Advances to the next record. Returns false at end of input. A record that cannot be parsed
  // (JSON syntax, unterminated quote, wrong field count) is returned as true with
  // record_error() set; the caller rejects it and goes on. IOError is fatal.
  virtual Result<bool> Next() = 0;
  // Why the current record is malformed, or empty.
  virtual const std::string& record_error() const = 0;
  // Line where the current record starts (1-based, counting the header).
  virtual int64_t line() const = 0;
  // Index of a column by name, or nullopt if the file has no such column. For JSON Lines every
  // name resolves (a key missing from a record reads as absent).
  virtual std::optional<int> Resolve(std::string_view column) = 0;
  // Value of a resolved column in the current record; nullopt if absent (JSON key missing or null).
  // Numbers and booleans in JSON are returned as their JSON text. The view is valid until Next().
  virtual std::optional<std::string_view> Field(int column) = 0;
  virtual double progress() const = 0;
  // Column names of a CSV file's header (empty for JSON Lines).
  virtual const std::vector<std::string>& header() const = 0;
};

enum class FileFormat { kAuto, kCsv, kJsonl };

// Opens `path` as CSV (first line is the header) or JSON Lines (one object per line; blank lines
// skipped). kAuto picks by extension after stripping ".gz": ".jsonl"/".json"/".ndjson" are JSON
// Lines, anything else CSV. InvalidArgument for an empty CSV (no header) or a header with
// duplicate or empty column names; IOError if unreadable.
Result<std::unique_ptr<RowSource>> OpenRowSource(const std::string& path, FileFormat format,
                                                 char delimiter = ',');

// Opens a headerless file of whitespace-separated fields (such as the CDNOW sample), naming its
// columns `columns`; a line with another number of fields is a malformed record. IOError if
// unreadable.
Result<std::unique_ptr<RowSource>> OpenWhitespaceSource(const std::string& path,
                                                        std::vector<std::string> columns);

// Splits one CSV record held in `text` (may contain newlines inside quotes) into fields.
// Returns false with *error set for an unterminated quote or text after a closing quote.
bool SplitCsvRecord(std::string_view text, char delimiter, std::vector<std::string>* fields,
                    std::string* error);

}  // namespace affinity
