#include "row_source.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

namespace affinity {

LineReader::LineReader(std::string path, gzFile file, int64_t size)
    : path_(std::move(path)), file_(file), size_(size), buffer_(1 << 16) {}

LineReader::~LineReader() {
  if (file_) gzclose(file_);
}

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::IOError("cannot open " + path + ": " + ec.message());
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return Status::IOError("cannot open " + path);
  gzbuffer(f, 1 << 17);
  return std::unique_ptr<LineReader>(new LineReader(path, f, static_cast<int64_t>(size)));
}

Result<bool> LineReader::Next(std::string* line) {
  line->clear();
  bool got_any = false;
  while (true) {
    char* r = gzgets(file_, buffer_.data(), static_cast<int>(buffer_.size()));
    if (r == nullptr) {
      int err = 0;
      const char* msg = gzerror(file_, &err);
      if (err != Z_OK && err != Z_STREAM_END) {
        return Status::IOError("reading " + path_ + " after line " + std::to_string(line_number_) +
                               ": " + msg);
      }
      break;
    }
    got_any = true;
    size_t n = std::char_traits<char>::length(r);
    line->append(r, n);
    if (n > 0 && r[n - 1] == '\n') break;
  }
  if (!got_any) return false;
  if (!line->empty() && line->back() == '\n') line->pop_back();
  if (!line->empty() && line->back() == '\r') line->pop_back();
  ++line_number_;
  return true;
}

double LineReader::progress() const {
  if (size_ <= 0) return 1.0;
  auto offset = static_cast<double>(gzoffset(file_));
  return std::clamp(offset / static_cast<double>(size_), 0.0, 1.0);
}

bool SplitCsvRecord(std::string_view text, char delimiter, std::vector<std::string>* fields,
                    std::string* error) {
  fields->clear();
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    if (i < text.size() && text[i] == '"') {
      ++i;
      while (true) {
        if (i >= text.size()) {
          *error = "unterminated quoted field";
          return false;
        }
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(text[i++]);
      }
      if (i < text.size() && text[i] != delimiter) {
        *error = "unexpected text after a closing quote";
        return false;
      }
    } else {
      size_t end = text.find(delimiter, i);
      if (end == std::string_view::npos) end = text.size();
      field.assign(text.substr(i, end - i));
      i = end;
    }
    fields->push_back(field);
    if (i >= text.size()) return true;
    ++i;  // skip the delimiter
  }
}

namespace {

// A quoted record may span lines, but not without bound: past this size it is reported as an
// unterminated quote, so one stray quote cannot swallow the rest of a file.
constexpr size_t kMaxRecordBytes = 1 << 20;

// True if `text` ends inside an open quoted field. As in RFC 4180 (and Python's csv module), a
// quote opens a quoted field only at the start of a field; elsewhere it is a literal character
// (`5" screen`). Inside a quoted field, `""` is an escaped quote.
bool EndsInsideQuotes(std::string_view text, char delimiter) {
  bool at_field_start = true;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          ++i;
        } else {
          quoted = false;
        }
      }
    } else if (c == delimiter) {
      at_field_start = true;
      continue;
    } else if (c == '"' && at_field_start) {
      quoted = true;
    }
    at_field_start = false;
  }
  return quoted;
}

// A source whose records are fields under a fixed list of column names (CSV, whitespace).
class FieldsSource : public RowSource {
 public:
  std::optional<int> Resolve(std::string_view column) override {
    auto it = std::find(header_.begin(), header_.end(), column);
    if (it == header_.end()) return std::nullopt;
    return static_cast<int>(it - header_.begin());
  }
  std::optional<std::string_view> Field(int column) override {
    if (column < 0 || static_cast<size_t>(column) >= fields_.size()) return std::nullopt;
    return std::string_view(fields_[column]);
  }
  const std::vector<std::string>& header() const override { return header_; }

 protected:
  std::vector<std::string> header_;
  std::vector<std::string> fields_;
};

class CsvSource final : public FieldsSource {
 public:
  CsvSource(std::unique_ptr<LineReader> reader, char delimiter)
      : reader_(std::move(reader)), delimiter_(delimiter) {}

  Status ReadHeader() {
    AFFINITY_ASSIGN_OR_RETURN(bool got, ReadRecord(/*strip_bom=*/true));
    if (!got) return Status::InvalidArgument(reader_->path() + ": file is empty (no header)");
    if (!error_.empty()) {
      return Status::InvalidArgument(reader_->path() + ":1: bad header: " + error_);
    }
    header_ = fields_;
    std::unordered_set<std::string> seen;
    for (auto& name : header_) {
      if (name.empty()) {
        return Status::InvalidArgument(reader_->path() + ":1: header has an empty column name");
      }
      if (!seen.insert(name).second) {
        return Status::InvalidArgument(reader_->path() + ":1: header repeats column '" + name +
                                       "'");
      }
    }
    return Status::Ok();
  }

  Result<bool> Next() override {
    while (true) {
      AFFINITY_ASSIGN_OR_RETURN(bool got, ReadRecord());
      if (!got) return false;
      if (error_.empty() && fields_.size() == 1 && fields_[0].empty()) continue;  // blank line
      if (error_.empty() && fields_.size() != header_.size()) {
        error_ = "expected " + std::to_string(header_.size()) + " fields, found " +
                 std::to_string(fields_.size());
      }
      return true;
    }
  }

  const std::string& record_error() const override { return error_; }
  int64_t line() const override { return line_; }
  double progress() const override { return reader_->progress(); }

 private:
  // Reads one logical record (joining physical lines while inside quotes). `strip_bom` removes a
  // UTF-8 byte order mark before splitting, so that a quoted first header name still parses.
  Result<bool> ReadRecord(bool strip_bom = false) {
    error_.clear();
    AFFINITY_ASSIGN_OR_RETURN(bool got, reader_->Next(&record_));
    if (!got) return false;
    if (strip_bom && record_.starts_with("\xEF\xBB\xBF")) record_.erase(0, 3);
    line_ = reader_->line_number();
    while (EndsInsideQuotes(record_, delimiter_) && record_.size() < kMaxRecordBytes) {
      AFFINITY_ASSIGN_OR_RETURN(bool more, reader_->Next(&continuation_));
      if (!more) break;  // SplitCsvRecord reports the unterminated quote
      record_ += '\n';
      record_ += continuation_;
    }
    if (!SplitCsvRecord(record_, delimiter_, &fields_, &error_)) fields_.clear();
    return true;
  }

  std::unique_ptr<LineReader> reader_;
  char delimiter_;
  std::string record_;
  std::string continuation_;
  std::string error_;
  int64_t line_ = 0;
};

class JsonlSource final : public RowSource {
 public:
  explicit JsonlSource(std::unique_ptr<LineReader> reader) : reader_(std::move(reader)) {}

  Result<bool> Next() override {
    error_.clear();
    while (true) {
      AFFINITY_ASSIGN_OR_RETURN(bool got, reader_->Next(&text_));
      if (!got) return false;
      if (text_.find_first_not_of(" \t") == std::string::npos) continue;
      object_ = nlohmann::json::parse(text_, nullptr, /*allow_exceptions=*/false);
      if (object_.is_discarded()) {
        error_ = "not valid JSON";
      } else if (!object_.is_object()) {
        error_ = "not a JSON object";
      }
      return true;
    }
  }

  const std::string& record_error() const override { return error_; }
  int64_t line() const override { return reader_->line_number(); }
  std::optional<int> Resolve(std::string_view column) override {
    auto it = std::find(keys_.begin(), keys_.end(), column);
    if (it != keys_.end()) return static_cast<int>(it - keys_.begin());
    keys_.emplace_back(column);
    values_.emplace_back();
    return static_cast<int>(keys_.size() - 1);
  }
  std::optional<std::string_view> Field(int column) override {
    if (!error_.empty() || column < 0 || static_cast<size_t>(column) >= keys_.size()) {
      return std::nullopt;
    }
    auto it = object_.find(keys_[column]);
    if (it == object_.end() || it->is_null()) return std::nullopt;
    std::string& out = values_[column];
    if (it->is_string()) {
      out = it->get_ref<const std::string&>();
    } else if (it->is_array()) {
      // Arrays of strings (tags, interests) are joined with ';', the CSV list separator.
      out.clear();
      for (const auto& element : *it) {
        if (!out.empty()) out += ';';
        out += element.is_string() ? element.get<std::string>() : element.dump();
      }
    } else {
      out = it->dump();
    }
    return std::string_view(out);
  }
  double progress() const override { return reader_->progress(); }
  const std::vector<std::string>& header() const override { return empty_; }

 private:
  std::unique_ptr<LineReader> reader_;
  std::string text_;
  nlohmann::json object_;
  std::string error_;
  std::vector<std::string> keys_;
  std::vector<std::string> values_;
  std::vector<std::string> empty_;
};

class WhitespaceSource final : public FieldsSource {
 public:
  WhitespaceSource(std::unique_ptr<LineReader> reader, std::vector<std::string> columns)
      : reader_(std::move(reader)) {
    header_ = std::move(columns);
  }

  Result<bool> Next() override {
    error_.clear();
    while (true) {
      AFFINITY_ASSIGN_OR_RETURN(bool got, reader_->Next(&text_));
      if (!got) return false;
      fields_.clear();
      size_t i = 0;
      while (true) {
        i = text_.find_first_not_of(" \t", i);
        if (i == std::string::npos) break;
        size_t end = text_.find_first_of(" \t", i);
        if (end == std::string::npos) end = text_.size();
        fields_.emplace_back(text_.substr(i, end - i));
        i = end;
      }
      if (fields_.empty()) continue;  // blank line
      if (fields_.size() != header_.size()) {
        error_ = "expected " + std::to_string(header_.size()) + " fields, found " +
                 std::to_string(fields_.size());
      }
      return true;
    }
  }
  const std::string& record_error() const override { return error_; }
  int64_t line() const override { return reader_->line_number(); }
  double progress() const override { return reader_->progress(); }

 private:
  std::unique_ptr<LineReader> reader_;
  std::string text_;
  std::string error_;
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Result<std::unique_ptr<RowSource>> OpenRowSource(const std::string& path, FileFormat format,
                                                 char delimiter) {
  if (format == FileFormat::kAuto) {
    std::string_view name = path;
    if (EndsWith(name, ".gz")) name.remove_suffix(3);
    format = EndsWith(name, ".jsonl") || EndsWith(name, ".json") || EndsWith(name, ".ndjson")
                 ? FileFormat::kJsonl
                 : FileFormat::kCsv;
  }
  AFFINITY_ASSIGN_OR_RETURN(auto reader, LineReader::Open(path));
  if (format == FileFormat::kJsonl)
    return std::unique_ptr<RowSource>(new JsonlSource(std::move(reader)));
  auto csv = std::make_unique<CsvSource>(std::move(reader), delimiter);
  AFFINITY_RETURN_IF_ERROR(csv->ReadHeader());
  return std::unique_ptr<RowSource>(std::move(csv));
}

Result<std::unique_ptr<RowSource>> OpenWhitespaceSource(const std::string& path,
                                                        std::vector<std::string> columns) {
  AFFINITY_ASSIGN_OR_RETURN(auto reader, LineReader::Open(path));
  return std::unique_ptr<RowSource>(new WhitespaceSource(std::move(reader), std::move(columns)));
}

}  // namespace affinity
