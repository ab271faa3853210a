#include "row_source.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace affinity {
namespace {

using ::affinity::testing::ScratchDir;

// ---- SplitCsvRecord ----

struct SplitResult {
  bool ok = false;
  std::vector<std::string> fields;
  std::string error;
};

SplitResult Split(std::string_view text, char delimiter = ',') {
  SplitResult r;
  r.fields = {"stale", "values"};  // must be cleared
  r.ok = SplitCsvRecord(text, delimiter, &r.fields, &r.error);
  return r;
}

using Fields = std::vector<std::string>;

TEST(SplitCsvRecord, PlainFields) {
  auto r = Split("a,bb,ccc");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.fields, (Fields{"a", "bb", "ccc"}));
  r = Split("single");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"single"}));
}

TEST(SplitCsvRecord, EmptyFields) {
  auto r = Split("");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{""}));
  r = Split(",");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"", ""}));
  r = Split("a,,c");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"a", "", "c"}));
  r = Split(",,");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"", "", ""}));
}

TEST(SplitCsvRecord, TrailingDelimiterAddsAnEmptyField) {
  auto r = Split("a,b,");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"a", "b", ""}));
  r = Split("\"a\",");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"a", ""}));
}

TEST(SplitCsvRecord, QuotedFields) {
  auto r = Split("\"a,b\",c,\"\"");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.fields, (Fields{"a,b", "c", ""}));
  r = Split("x,\"last\"");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"x", "last"}));
  r = Split("\"line1\nline2\",z");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"line1\nline2", "z"}));
  r = Split("\" padded \"");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{" padded "}));
}

TEST(SplitCsvRecord, DoubledQuotesAreOneQuote) {
  auto r = Split("\"say \"\"hi\"\"\",x");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.fields, (Fields{"say \"hi\"", "x"}));
  r = Split("\"\"\"\"");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"\""}));
  r = Split("\"\"\"a\"\"\"");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"\"a\""}));
}

TEST(SplitCsvRecord, QuoteInsideAnUnquotedFieldIsLiteral) {
  auto r = Split("5\" screen,x");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.fields, (Fields{"5\" screen", "x"}));
}

TEST(SplitCsvRecord, OtherDelimiters) {
  auto r = Split("a;\"b;c\";d,e", ';');
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"a", "b;c", "d,e"}));
  r = Split("a\t\tb,c\t", '\t');
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"a", "", "b,c", ""}));
  r = Split("x|\"y|z\"", '|');
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.fields, (Fields{"x", "y|z"}));
}

TEST(SplitCsvRecord, UnterminatedQuoteFails) {
  for (std::string_view text : {"\"abc", "a,\"b", "\"", "a,\"b\"\"", "\"a\nb"}) {
    auto r = Split(text);
    EXPECT_FALSE(r.ok) << text;
    EXPECT_NE(r.error.find("unterminated"), std::string::npos) << text << ": " << r.error;
  }
}

TEST(SplitCsvRecord, TextAfterClosingQuoteFails) {
  for (std::string_view text : {"\"a\"b,c", "x,\"a\" ", "\"a\"\"b\"c"}) {
    auto r = Split(text);
    EXPECT_FALSE(r.ok) << text;
    EXPECT_NE(r.error.find("after a closing quote"), std::string::npos) << text << ": " << r.error;
  }
}

// ---- CSV files ----

// Reads every record: the fields (resolved by header name), record_error and line.
struct Record {
  int64_t line = 0;
  std::string error;
  std::vector<std::optional<std::string>> fields;
  bool operator==(const Record&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Record& r) {
  os << "{line " << r.line << ", error '" << r.error << "', fields [";
  for (const auto& f : r.fields) os << (f ? "'" + *f + "'" : std::string("null")) << " ";
  return os << "]}";
}

std::vector<Record> ReadAll(RowSource& source, const std::vector<std::string>& columns) {
  std::vector<std::optional<int>> index;
  for (const auto& c : columns) index.push_back(source.Resolve(c));
  std::vector<Record> out;
  while (true) {
    auto next = source.Next();
    EXPECT_TRUE(next.ok()) << next.status().ToString();
    if (!next.ok() || !*next) break;
    Record r;
    r.line = source.line();
    r.error = source.record_error();
    for (const auto& i : index) {
      std::optional<std::string> value;
      if (i) {
        if (auto v = source.Field(*i)) value = std::string(*v);
      }
      r.fields.push_back(value);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::unique_ptr<RowSource> OpenOk(const std::string& path, FileFormat format = FileFormat::kAuto,
                                  char delimiter = ',') {
  auto r = OpenRowSource(path, format, delimiter);
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

void WriteGz(const std::string& path, const std::string& content) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())),
            static_cast<int>(content.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

TEST(CsvSource, ResolvesHeaderNames) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "customer,product,\"unit price\"\nc1,p1,2.50\nc2,p2,3\n"));
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->header(), (Fields{"customer", "product", "unit price"}));
  EXPECT_EQ(src->Resolve("customer"), 0);
  EXPECT_EQ(src->Resolve("product"), 1);
  EXPECT_EQ(src->Resolve("unit price"), 2);
  EXPECT_EQ(src->Resolve("Customer"), std::nullopt);  // case-sensitive
  EXPECT_EQ(src->Resolve("missing"), std::nullopt);
  auto rows = ReadAll(*src, {"product", "unit price", "customer"});
  std::vector<Record> want = {{2, "", {"p1", "2.50", "c1"}}, {3, "", {"p2", "3", "c2"}}};
  EXPECT_EQ(rows, want);
}

TEST(CsvSource, FieldOutOfRangeIsAbsent) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n1,2\n"));
  ASSERT_NE(src, nullptr);
  auto next = src->Next();
  ASSERT_TRUE(next.ok() && *next);
  EXPECT_EQ(src->Field(0), "1");
  EXPECT_EQ(src->Field(2), std::nullopt);
  EXPECT_EQ(src->Field(-1), std::nullopt);
}

TEST(CsvSource, HeaderOnlyHasNoRecords) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n"));
  ASSERT_NE(src, nullptr);
  auto next = src->Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(*next);
}

TEST(CsvSource, LastLineWithoutNewline) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n1,2\n3,4"));
  ASSERT_NE(src, nullptr);
  std::vector<Record> want = {{2, "", {"1", "2"}}, {3, "", {"3", "4"}}};
  EXPECT_EQ(ReadAll(*src, {"a", "b"}), want);
}

TEST(CsvSource, CrlfLineEndings) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\r\n1,2\r\n\"x\",\"y\"\r\n"));
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->header(), (Fields{"a", "b"}));
  std::vector<Record> want = {{2, "", {"1", "2"}}, {3, "", {"x", "y"}}};
  EXPECT_EQ(ReadAll(*src, {"a", "b"}), want);
}

TEST(CsvSource, Utf8BomIsStrippedFromTheHeader) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "\xEF\xBB\xBFid,name\n1,x\n"));
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->header(), (Fields{"id", "name"}));
  EXPECT_EQ(src->Resolve("id"), 0);
  std::vector<Record> want = {{2, "", {"1", "x"}}};
  EXPECT_EQ(ReadAll(*src, {"id", "name"}), want);
}

TEST(CsvSource, Utf8BomBeforeAQuotedHeader) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "\xEF\xBB\xBF\"id\",\"name\"\r\n1,x\r\n"));
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->header(), (Fields{"id", "name"}));
  std::vector<Record> want = {{2, "", {"1", "x"}}};
  EXPECT_EQ(ReadAll(*src, {"id", "name"}), want);
}

TEST(CsvSource, QuotedFieldSpanningLines) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv",
                              "id,note\n"              // line 1
                              "1,\"first\n"            // line 2
                              "second, \"\"q\"\"\"\n"  // line 3
                              "2,plain\n"              // line 4
                              "3,\"a\n"                // line 5
                              "\n"                     // line 6 (inside the quotes: kept)
                              "b\"\n"                  // line 7
                              "4,end\n"));             // line 8
  ASSERT_NE(src, nullptr);
  std::vector<Record> want = {{2, "", {"1", "first\nsecond, \"q\""}},
                              {4, "", {"2", "plain"}},
                              {5, "", {"3", "a\n\nb"}},
                              {8, "", {"4", "end"}}};
  EXPECT_EQ(ReadAll(*src, {"id", "note"}), want);
}

TEST(CsvSource, QuotedFieldSpanningCrlfLines) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "id,note\r\n1,\"first\r\nsecond\"\r\n2,x\r\n"));
  ASSERT_NE(src, nullptr);
  std::vector<Record> want = {{2, "", {"1", "first\nsecond"}}, {4, "", {"2", "x"}}};
  EXPECT_EQ(ReadAll(*src, {"id", "note"}), want);
}

TEST(CsvSource, BlankLinesAreSkipped) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n\n1,2\n\n\n3,4\n\n"));
  ASSERT_NE(src, nullptr);
  std::vector<Record> want = {{3, "", {"1", "2"}}, {6, "", {"3", "4"}}};
  EXPECT_EQ(ReadAll(*src, {"a", "b"}), want);
}

TEST(CsvSource, WrongFieldCountIsARecordErrorAndReadingContinues) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n1,2\n1,2,3\n4\n5,6\n"));
  ASSERT_NE(src, nullptr);
  auto a = src->Resolve("a");
  ASSERT_TRUE(a.has_value());

  ASSERT_TRUE(*src->Next());
  EXPECT_EQ(src->line(), 2);
  EXPECT_EQ(src->record_error(), "");

  ASSERT_TRUE(*src->Next());
  EXPECT_EQ(src->line(), 3);
  EXPECT_NE(src->record_error().find("expected 2 fields, found 3"), std::string::npos)
      << src->record_error();

  ASSERT_TRUE(*src->Next());
  EXPECT_EQ(src->line(), 4);
  EXPECT_NE(src->record_error().find("expected 2 fields, found 1"), std::string::npos)
      << src->record_error();

  ASSERT_TRUE(*src->Next());
  EXPECT_EQ(src->line(), 5);
  EXPECT_EQ(src->record_error(), "");
  EXPECT_EQ(src->Field(*a), "5");

  auto end = src->Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
}

TEST(CsvSource, TextAfterClosingQuoteIsARecordError) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n\"x\"y,2\n3,4\n"));
  ASSERT_NE(src, nullptr);
  auto rows = ReadAll(*src, {"a", "b"});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 2);
  EXPECT_NE(rows[0].error, "");
  EXPECT_EQ(rows[1], (Record{3, "", {"3", "4"}}));
}

TEST(CsvSource, UnterminatedQuoteRunsToEndOfFile) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.csv", "a,b\n1,2\n3,\"open\n5,6\n"));
  ASSERT_NE(src, nullptr);
  auto rows = ReadAll(*src, {"a", "b"});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (Record{2, "", {"1", "2"}}));
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_NE(rows[1].error.find("unterminated"), std::string::npos) << rows[1].error;
}

TEST(CsvSource, OtherDelimiters) {
  ScratchDir dir;
  auto semi = OpenOk(dir.Write("e.csv", "a;b\n1,5;\"x;y\"\n"), FileFormat::kCsv, ';');
  ASSERT_NE(semi, nullptr);
  EXPECT_EQ(ReadAll(*semi, {"a", "b"}), (std::vector<Record>{{2, "", {"1,5", "x;y"}}}));
  auto tab = OpenOk(dir.Write("e.tsv", "a\tb\n1\t\n"), FileFormat::kCsv, '\t');
  ASSERT_NE(tab, nullptr);
  EXPECT_EQ(ReadAll(*tab, {"a", "b"}), (std::vector<Record>{{2, "", {"1", ""}}}));
}

TEST(CsvSource, LongLines) {
  ScratchDir dir;
  std::string big(200000, 'x');  // several times LineReader's 64 KiB buffer
  auto src = OpenOk(dir.Write("e.csv", "a,b\n" + big + ",1\n2,\"" + big + "\n" + big + "\"\n"));
  ASSERT_NE(src, nullptr);
  std::vector<Record> want = {{2, "", {big, "1"}}, {3, "", {"2", big + "\n" + big}}};
  EXPECT_EQ(ReadAll(*src, {"a", "b"}), want);
}

TEST(OpenRowSource, EmptyCsvIsInvalidArgument) {
  ScratchDir dir;
  auto r = OpenRowSource(dir.Write("empty.csv", ""), FileFormat::kCsv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(OpenRowSource, BadHeadersAreInvalidArgument) {
  ScratchDir dir;
  for (std::string header : {"a,b,a\n1,2,3\n", "a,,b\n", "a,b,\n", ",a\n", "\n1\n",
                             "\xEF\xBB\xBF\n", "\"a\",\"a\"\n", "\"unterminated,b\n"}) {
    auto r = OpenRowSource(dir.Write("h.csv", header), FileFormat::kCsv);
    ASSERT_FALSE(r.ok()) << header;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << header;
  }
}

TEST(OpenRowSource, MissingFileIsIOError) {
  ScratchDir dir;
  for (FileFormat format : {FileFormat::kAuto, FileFormat::kCsv, FileFormat::kJsonl}) {
    auto r = OpenRowSource(dir.Sub("nope.csv"), format);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kIOError);
    EXPECT_NE(r.status().message().find("nope.csv"), std::string::npos) << r.status().message();
  }
}

TEST(OpenRowSource, AutoPicksFormatByExtension) {
  ScratchDir dir;
  const std::string jsonl = "{\"a\":\"1\"}\n";
  for (std::string name : {"e.jsonl", "e.json", "e.ndjson"}) {
    auto src = OpenOk(dir.Write(name, jsonl));
    ASSERT_NE(src, nullptr) << name;
    EXPECT_TRUE(src->header().empty()) << name;
    EXPECT_EQ(ReadAll(*src, {"a"}), (std::vector<Record>{{1, "", {"1"}}})) << name;
  }
  WriteGz(dir.Sub("g.jsonl.gz"), jsonl);
  auto gz = OpenOk(dir.Sub("g.jsonl.gz"));
  ASSERT_NE(gz, nullptr);
  EXPECT_EQ(ReadAll(*gz, {"a"}), (std::vector<Record>{{1, "", {"1"}}}));
  for (std::string name : {"e.csv", "e.txt", "e"}) {
    auto src = OpenOk(dir.Write(name, "a\n1\n"));
    ASSERT_NE(src, nullptr) << name;
    EXPECT_EQ(src->header(), (Fields{"a"})) << name;
  }
}

// ---- JSON Lines ----

TEST(JsonlSource, ValuesAsText) {
  ScratchDir dir;
  auto src = OpenOk(
      dir.Write("e.jsonl",
                "{\"customer\":\"c1\",\"qty\":3,\"price\":2.5,\"gift\":true,\"tags\":[\"a\",\"b\"],"
                "\"n\":null}\n"
                "{\"customer\":\"q\\\"\\u00e9\",\"qty\":-1,\"price\":12345678901234,\"gift\":false,"
                "\"tags\":[1,\"x\",null],\"n\":{\"k\":1}}\n"
                "{\"tags\":[],\"customer\":\"\"}\n"));
  ASSERT_NE(src, nullptr);
  auto rows = ReadAll(*src, {"customer", "qty", "price", "gift", "tags", "n", "missing"});
  std::vector<Record> want = {
      {1, "", {"c1", "3", "2.5", "true", "a;b", std::nullopt, std::nullopt}},
      {2,
       "",
       {"q\"\xC3\xA9", "-1", "12345678901234", "false", "1;x;null", "{\"k\":1}", std::nullopt}},
      {3, "", {"", std::nullopt, std::nullopt, std::nullopt, "", std::nullopt, std::nullopt}},
  };
  EXPECT_EQ(rows, want);
}

TEST(JsonlSource, EveryNameResolvesToAStableIndex) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.jsonl", "{\"a\":1,\"b\":2}\n"));
  ASSERT_NE(src, nullptr);
  auto a = src->Resolve("a");
  auto zz = src->Resolve("zz");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(zz.has_value());
  EXPECT_NE(*a, *zz);
  EXPECT_EQ(src->Resolve("a"), a);
  ASSERT_TRUE(*src->Next());
  // Resolving after the first record works too.
  auto b = src->Resolve("b");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(src->Field(*a), "1");
  EXPECT_EQ(src->Field(*b), "2");
  EXPECT_EQ(src->Field(*zz), std::nullopt);
  EXPECT_EQ(src->Field(99), std::nullopt);
  EXPECT_TRUE(src->header().empty());
}

TEST(JsonlSource, BadLinesAreRecordErrorsAndReadingContinues) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.jsonl",
                              "{\"a\":\"1\"}\n"    // line 1
                              "\n"                 // line 2 (blank, skipped)
                              "not json\n"         // line 3
                              "  \t \n"            // line 4 (blank, skipped)
                              "[1,2]\n"            // line 5
                              "{\"a\":\"2\"\n"     // line 6 (truncated object)
                              "\"str\"\r\n"        // line 7
                              "{\"a\":\"3\"}\r\n"  // line 8
                              ));
  ASSERT_NE(src, nullptr);
  auto rows = ReadAll(*src, {"a"});
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], (Record{1, "", {"1"}}));
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].error, "not valid JSON");
  EXPECT_EQ(rows[1].fields, (std::vector<std::optional<std::string>>{std::nullopt}));
  EXPECT_EQ(rows[2].line, 5);
  EXPECT_EQ(rows[2].error, "not a JSON object");
  EXPECT_EQ(rows[2].fields, (std::vector<std::optional<std::string>>{std::nullopt}));
  EXPECT_EQ(rows[3].line, 6);
  EXPECT_EQ(rows[3].error, "not valid JSON");
  EXPECT_EQ(rows[4].line, 7);
  EXPECT_EQ(rows[4].error, "not a JSON object");
  EXPECT_EQ(rows[5], (Record{8, "", {"3"}}));
}

TEST(JsonlSource, EmptyFileHasNoRecords) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("e.jsonl", ""));
  ASSERT_NE(src, nullptr);
  auto next = src->Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(*next);
}

// ---- gzip ----

const char kCsv[] =
    "\xEF\xBB\xBF"
    "customer,product,qty\r\n"
    "c1,p1,1\r\n"
    "\r\n"
    "c2,\"multi\r\nline\",2\r\n"
    "c3,p3\r\n"
    "c4,\"p,4\",4\r\n";

TEST(GzipSource, ReadsTheSameAsPlainIncludingWithoutGzSuffix) {
  ScratchDir dir;
  const std::vector<std::string> columns = {"customer", "product", "qty"};
  auto plain = OpenOk(dir.Write("plain.csv", kCsv));
  ASSERT_NE(plain, nullptr);
  auto want = ReadAll(*plain, columns);
  ASSERT_EQ(want.size(), 4u);
  EXPECT_EQ(want[0], (Record{2, "", {"c1", "p1", "1"}}));
  EXPECT_EQ(want[1], (Record{4, "", {"c2", "multi\nline", "2"}}));
  EXPECT_EQ(want[2].line, 6);
  EXPECT_NE(want[2].error, "");
  EXPECT_EQ(want[3], (Record{7, "", {"c4", "p,4", "4"}}));

  for (std::string name : {"e.csv.gz", "e.csv", "e.dat"}) {
    WriteGz(dir.Sub(name), kCsv);
    // Really compressed: starts with the gzip magic bytes.
    ASSERT_EQ(testing::ReadFile(dir.Sub(name)).substr(0, 2), "\x1f\x8b") << name;
    auto gz = OpenOk(dir.Sub(name));
    ASSERT_NE(gz, nullptr) << name;
    EXPECT_EQ(gz->header(), plain->header()) << name;
    EXPECT_EQ(ReadAll(*gz, columns), want) << name;
    EXPECT_GE(gz->progress(), 0.99) << name;
    EXPECT_LE(gz->progress(), 1.0) << name;
  }
}

TEST(GzipSource, EmptyGzipCsvIsInvalidArgument) {
  ScratchDir dir;
  WriteGz(dir.Sub("e.csv.gz"), "");
  auto r = OpenRowSource(dir.Sub("e.csv.gz"), FileFormat::kAuto);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

std::string ManyRows(int n) {
  std::string s = "id,payload\n";
  uint64_t x = 88172645463325252ull;  // xorshift: poorly compressible payload
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += std::to_string(i) + "," + std::to_string(x) + "\n";
  }
  return s;
}

TEST(GzipSource, TruncatedStreamIsIOError) {
  ScratchDir dir;
  std::string path = dir.Sub("t.csv.gz");
  WriteGz(path, ManyRows(20000));
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  auto src = OpenOk(path);
  ASSERT_NE(src, nullptr);
  Status error;
  int64_t records = 0;
  while (true) {
    auto next = src->Next();
    if (!next.ok()) {
      error = next.status();
      break;
    }
    if (!*next) break;
    ++records;
  }
  EXPECT_EQ(error.code(), StatusCode::kIOError) << "read " << records << " records silently";
  EXPECT_LT(records, 20000);
}

// ---- progress ----

void ExpectProgressRisesToOne(RowSource& src, int64_t expected_records) {
  double last = src.progress();
  EXPECT_GE(last, 0.0);
  int64_t records = 0;
  while (true) {
    auto next = src.Next();
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    if (!*next) break;
    ++records;
    double p = src.progress();
    EXPECT_GE(p, last);
    EXPECT_LE(p, 1.0);
    last = p;
  }
  EXPECT_EQ(records, expected_records);
  EXPECT_GE(src.progress(), 0.99);
  EXPECT_LE(src.progress(), 1.0);
}

TEST(RowSourceProgress, ReachesOneForPlainCsv) {
  ScratchDir dir;
  auto src = OpenOk(dir.Write("big.csv", ManyRows(50000)));
  ASSERT_NE(src, nullptr);
  ExpectProgressRisesToOne(*src, 50000);
}

TEST(RowSourceProgress, ReachesOneForGzipCsv) {
  ScratchDir dir;
  WriteGz(dir.Sub("big.csv.gz"), ManyRows(50000));
  auto src = OpenOk(dir.Sub("big.csv.gz"));
  ASSERT_NE(src, nullptr);
  ExpectProgressRisesToOne(*src, 50000);
}

TEST(RowSourceProgress, ReachesOneForSmallFiles) {
  ScratchDir dir;
  auto csv = OpenOk(dir.Write("s.csv", "a\n1\n"));
  ASSERT_NE(csv, nullptr);
  ExpectProgressRisesToOne(*csv, 1);
  auto jsonl = OpenOk(dir.Write("s.jsonl", "{\"a\":1}\n{\"a\":2}\n"));
  ASSERT_NE(jsonl, nullptr);
  ExpectProgressRisesToOne(*jsonl, 2);
}

}  // namespace
}  // namespace affinity

namespace affinity {
namespace {

// A quote inside an unquoted field is a literal character: it must not open a multi-line field
// and swallow the records after it.
TEST(CsvSource, StrayQuoteInAnUnquotedFieldIsLiteral) {
  ScratchDir dir;
  auto src =
      OpenOk(dir.Write("s.csv", "id,title,price\n1,5\" screen,9\n2,\"quoted, ok\",3\n3,x,4\n"));
  ASSERT_NE(src, nullptr);
  auto rows = ReadAll(*src, {"id", "title", "price"});
  std::vector<Record> want = {{2, "", {"1", "5\" screen", "9"}},
                              {3, "", {"2", "quoted, ok", "3"}},
                              {4, "", {"3", "x", "4"}}};
  EXPECT_EQ(rows, want);
}

// An unterminated quote is reported as one bad record; it joins lines only up to a size cap.
TEST(CsvSource, UnterminatedQuoteIsCappedAndReported) {
  ScratchDir dir;
  std::string content = "id,title\n1,\"open quote\n";
  std::string filler(100, 'x');
  for (int i = 0; i < 20000; ++i) content += filler + "\n";  // 2 MB, longer than the cap
  auto src = OpenOk(dir.Write("u.csv", content));
  ASSERT_NE(src, nullptr);
  int64_t records = 0, bad = 0;
  while (true) {
    auto got = src->Next();
    ASSERT_TRUE(got.ok());
    if (!*got) break;
    ++records;
    if (!src->record_error().empty()) ++bad;
  }
  EXPECT_EQ(records, bad);  // every record is malformed (one field instead of two) ...
  EXPECT_GT(records, 1);    // ... but the first did not swallow the whole file
}

}  // namespace
}  // namespace affinity
