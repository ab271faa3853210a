#include "affinity/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

namespace affinity {
namespace {

using nlohmann::json;

// What the writer produces parses back (nlohmann, strict) to the values written: nesting and
// commas, every escape, non-ASCII text, numbers at full precision, null for non-finite ones.
TEST(JsonWriter, WritesDocumentsThatParseBackToTheValues) {
  const std::string tricky = std::string("quote \" backslash \\ newline \n tab \t nul ") + '\0' +
                             " bell \x07 del \x7f café 😀";
  const float score = 0.1f;
  const double probability = 1.0 / 3.0;
  JsonWriter w;
  w.BeginObject().Key("name").String(tricky).Key("n").Int(-42).Key("big").Int(INT64_MAX);
  w.Key("score").Number(score).Key("p").Number(probability);
  w.Key("nan").Number(std::numeric_limits<double>::quiet_NaN());
  w.Key("inf").Number(std::numeric_limits<float>::infinity());
  w.Key("yes").Bool(true).Key("none").Null().Key("list").BeginArray();
  w.BeginObject().Key("a").Int(1).EndObject().BeginObject().EndObject().BeginArray().EndArray();
  w.String("x").EndArray().Key("after").String("").EndObject();
  const std::string text = w.Take();
  const json j = json::parse(text);  // throws on malformed JSON
  EXPECT_EQ(j["name"], tricky);
  EXPECT_EQ(j["n"], -42);
  EXPECT_EQ(j["big"], INT64_MAX);
  EXPECT_EQ(j["score"].get<float>(), score);  // the float round-trips exactly
  EXPECT_EQ(j["p"].get<double>(), probability);
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_TRUE(j["inf"].is_null());
  EXPECT_EQ(j["yes"], true);
  EXPECT_TRUE(j["none"].is_null());
  ASSERT_EQ(j["list"].size(), 4u);
  EXPECT_EQ(j["list"][0]["a"], 1);
  EXPECT_TRUE(j["list"][1].is_object() && j["list"][1].empty());
  EXPECT_TRUE(j["list"][2].is_array() && j["list"][2].empty());
  EXPECT_EQ(j["list"][3], "x");
  EXPECT_EQ(j["after"], "");
  // Control characters are escaped, never written raw.
  for (char c : text) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << text;
  EXPECT_NE(text.find("\\u0000"), std::string::npos);
  EXPECT_NE(text.find("\\u0007"), std::string::npos);
  EXPECT_EQ(std::string(JsonWriter().Number(0.1f).Take()), "0.1");  // shortest form
}

// Bytes that are not UTF-8 (a lone continuation byte, a truncated sequence, an overlong form, a
// surrogate) become U+FFFD, so the document stays valid.
// A string written as prefix + rest is the joined string, escaped as one: plain ASCII as it is,
// and anything with an escape or non-ASCII byte on either side through the escaping path.
TEST(JsonWriter, WritesAJoinedStringAsOne) {
  JsonWriter w(8);  // grows past its reservation
  w.BeginArray().String("because you bought ", "p-17").String("a \"quoted\" ", "caf\xc3\xa9\n");
  w.String("", "").String("bad \xff ", "tail").EndArray();
  const std::string text = w.Take();
  const std::string head = R"(["because you bought p-17","a \"quoted\" )";
  EXPECT_EQ(text.substr(0, head.size()), head);
  const json j = json::parse(text);
  EXPECT_EQ(j[0], "because you bought p-17");
  EXPECT_EQ(j[1], "a \"quoted\" caf\xc3\xa9\n");
  EXPECT_EQ(j[2], "");
  EXPECT_EQ(j[3], "bad \xef\xbf\xbd tail");  // U+FFFD for the invalid byte
}

// What PlainName accepts when compiling (a literal that needs an escape does not compile).
static_assert(IsPlainName("customer") && IsPlainName("expected_buyers") && IsPlainName(""));
static_assert(!IsPlainName("a\"b") && !IsPlainName("back\\slash") && !IsPlainName("tab\t") &&
              !IsPlainName("caf\xc3\xa9"));

// A name checked when compiling (PlainName) is written as the same name given at run time, with
// the same commas, in objects nested and one after another, past the writer's reservation.
TEST(JsonWriter, APlainNameWritesWhatTheSameKeyWrites) {
  auto write = [](bool plain) {
    JsonWriter w(4);
    w.BeginArray();
    for (int i = 0; i < 3; ++i) {
      w.BeginObject();
      plain ? w.Key(PlainName("customer")) : w.Key("customer");
      w.String("c-" + std::to_string(i));
      plain ? w.Key(PlainName("reason")) : w.Key("reason");
      w.BeginObject();
      plain ? w.Key(PlainName("kind")) : w.Key("kind");
      w.String("purchased").EndObject();
      plain ? w.Key(PlainName("score")) : w.Key("score");
      w.Number(0.25).EndObject();
    }
    return w.EndArray().Take();
  };
  const std::string text = write(true);
  EXPECT_EQ(text, write(false));
  const json j = json::parse(text);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[2]["customer"], "c-2");
  EXPECT_EQ(j[1]["reason"]["kind"], "purchased");
  EXPECT_EQ(j[0]["score"], 0.25);
}

TEST(JsonWriter, ReplacesInvalidUtf8) {
  for (const std::string& bad : {std::string("a\x80z"), std::string("ab\xe2\x82"),
                                 std::string("\xc0\xaf"), std::string("\xed\xa0\x80")}) {
    JsonWriter w;
    w.BeginArray().String(bad).EndArray();
    const std::string text = w.Take();
    const json j = json::parse(text);
    const std::string back = j[0];
    EXPECT_NE(back.find("\xef\xbf\xbd"), std::string::npos) << text;
  }
}

// A raw value takes its place among the others: separated by commas like any value, written where
// BeginRaw said, and the document goes on after it.
TEST(JsonWriter, RawValuesAreSeparatedLikeOthers) {
  JsonWriter w(4);  // grows inside BeginRaw
  w.BeginObject().Key("list").BeginArray().Int(1);
  for (double v : {0.5, std::numeric_limits<double>::quiet_NaN()}) {
    char* const start = w.BeginRaw(64);
    char* at = JsonWriter::Copy(start, R"({"v":)");
    at = JsonWriter::Copy(JsonWriter::WriteNumber(at, v), "}");
    w.EndRaw(at);
  }
  w.String("end").EndArray().Key("raw");
  // A raw value as a member's value (after its key) and as a container's first element.
  char* at = w.BeginRaw(8);
  w.EndRaw(JsonWriter::Copy(at, "true"));
  w.Key("first").BeginArray();
  at = w.BeginRaw(8);
  w.EndRaw(JsonWriter::Copy(at, "2"));
  w.Int(3).EndArray().Key("after").Bool(false).EndObject();
  EXPECT_EQ(w.Take(),
            R"({"list":[1,{"v":0.5},{"v":null},"end"],"raw":true,"first":[2,3],"after":false})");
  EXPECT_TRUE(JsonWriter::Plain("c-12 ok"));
  EXPECT_FALSE(JsonWriter::Plain("quote\""));
  EXPECT_FALSE(JsonWriter::Plain("caf\xc3\xa9"));
}

}  // namespace
}  // namespace affinity
