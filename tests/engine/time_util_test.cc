#include "affinity/time_util.h"

#include <gtest/gtest.h>

#include <string>

namespace affinity {
namespace {

// Expected values below were computed independently with GNU date, e.g.
//   date -u -d "2011-12-09T12:50:00+01:00" +%s
//   date -u -d @-86401 +%Y-%m-%dT%H:%M:%SZ

UnixSeconds ParseOk(std::string_view text) {
  auto r = ParseTimestamp(text);
  EXPECT_TRUE(r.ok()) << "'" << text << "': " << r.status().ToString();
  return r.ok() ? *r : -999999;
}

void ExpectRejected(std::string_view text) {
  auto r = ParseTimestamp(text);
  ASSERT_FALSE(r.ok()) << "'" << text << "' parsed as " << *r;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
  EXPECT_EQ(r.status().field(), "time") << text;
  EXPECT_NE(r.status().message().find(std::string(text)), std::string::npos)
      << "message should quote the input: " << r.status().message();
}

TEST(ParseTimestamp, DateOnlyIsMidnightUtc) {
  EXPECT_EQ(ParseOk("2011-12-09"), 1323388800);
  EXPECT_EQ(ParseOk("1970-01-01"), 0);
  EXPECT_EQ(ParseOk("1900-01-01"), -2208988800);
  EXPECT_EQ(ParseOk("2000-03-01"), 951868800);
  EXPECT_EQ(ParseOk("2100-03-01"), 4107542400);
  EXPECT_EQ(ParseOk("1600-03-01"), -11670912000);
}

TEST(ParseTimestamp, DateAndMinutes) {
  EXPECT_EQ(ParseOk("2011-12-09 12:50"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09T12:50"), 1323435000);
}

TEST(ParseTimestamp, DateAndSeconds) {
  EXPECT_EQ(ParseOk("2011-12-09 12:50:00"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:07"), 1323435007);
  EXPECT_EQ(ParseOk("1969-12-31T23:59:59Z"), -1);
  EXPECT_EQ(ParseOk("2038-01-19T03:14:07Z"), 2147483647);
  EXPECT_EQ(ParseOk("9999-12-31T23:59:59Z"), 253402300799);
}

TEST(ParseTimestamp, FractionsAreDropped) {
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00.250Z"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00.999999999Z"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09 12:50:00,5"), 1323435000);
  EXPECT_EQ(ParseOk("1969-12-31T23:59:59.900Z"), -1);
}

TEST(ParseTimestamp, ZuluSuffix) {
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00Z"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09T12:50Z"), 1323435000);
}

TEST(ParseTimestamp, Offsets) {
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00+01:00"), 1323431400);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00+0100"), 1323431400);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00-05:30"), 1323454800);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00.250+01:00"), 1323431400);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00+00:00"), 1323435000);
  EXPECT_EQ(ParseOk("2011-12-09T12:50:00-00:00"), 1323435000);
  // Offsets that move the instant across a day and year boundary.
  EXPECT_EQ(ParseOk("2011-12-31T23:30:00-01:00"), 1325377800);  // 2012-01-01T00:30:00Z
  EXPECT_EQ(ParseOk("2012-01-01T00:30:00+01:00"), 1325374200);  // 2011-12-31T23:30:00Z
}

TEST(ParseTimestamp, UnixSeconds) {
  EXPECT_EQ(ParseOk("1323435000"), 1323435000);
  EXPECT_EQ(ParseOk("1323435000.75"), 1323435000);
  EXPECT_EQ(ParseOk("0"), 0);
  EXPECT_EQ(ParseOk("42"), 42);
  EXPECT_EQ(ParseOk("-86400"), -86400);
  EXPECT_EQ(ParseOk("253402300799"), 253402300799);
}

TEST(ParseTimestamp, SurroundingSpacesAreIgnored) {
  EXPECT_EQ(ParseOk("  2011-12-09T12:50:00Z "), 1323435000);
  EXPECT_EQ(ParseOk(" 1323435000  "), 1323435000);
}

TEST(ParseTimestamp, LeapDays) {
  EXPECT_EQ(ParseOk("2024-02-29"), 1709164800);
  EXPECT_EQ(ParseOk("2024-02-29T23:59:59Z"), 1709251199);
  EXPECT_EQ(ParseOk("2000-02-29"), 951782400);  // divisible by 400: leap
  ExpectRejected("2023-02-29");
  ExpectRejected("1900-02-29");  // divisible by 100, not 400: not leap
  ExpectRejected("2100-02-29");
  ExpectRejected("2024-02-30");
}

TEST(ParseTimestamp, RejectsOutOfRangeFields) {
  ExpectRejected("2011-13-01");
  ExpectRejected("2011-00-10");
  ExpectRejected("2011-12-00");
  ExpectRejected("2011-12-32");
  ExpectRejected("2011-04-31");
  ExpectRejected("2011-12-09T24:00:00Z");
  ExpectRejected("2011-12-09 24:00");
  ExpectRejected("2011-12-09T12:60:00Z");
  ExpectRejected("2011-12-09T12:50:61Z");
  ExpectRejected("2011-12-09T12:50:00+24:00");
  ExpectRejected("2011-12-09T12:50:00+01:60");
}

TEST(ParseTimestamp, RejectsGarbageAndEmpty) {
  ExpectRejected("");
  ExpectRejected("   ");
  ExpectRejected("yesterday");
  ExpectRejected("12/09/2011");
  ExpectRejected("2011/12/09");
  ExpectRejected("09-12-2011");
  ExpectRejected("2011-12-9");
  ExpectRejected("2011-1-09");
  ExpectRejected("abcd-ef-gh");
  ExpectRejected("1e9");
  ExpectRejected("0x10");
  ExpectRejected("12.");
  ExpectRejected(".5");
  ExpectRejected("-");
  ExpectRejected("1.2.3");
  ExpectRejected("99999999999999999999");  // overflows int64
}

TEST(ParseTimestamp, RejectsTrailingJunk) {
  ExpectRejected("2011-12-09x");
  ExpectRejected("2011-12-09T");
  ExpectRejected("2011-12-09T12");
  ExpectRejected("2011-12-09T12:5");
  ExpectRejected("2011-12-09T12:50:0");
  ExpectRejected("2011-12-09T12:50:00.");
  ExpectRejected("2011-12-09T12:50:00Zjunk");
  ExpectRejected("2011-12-09T12:50:00ZZ");
  ExpectRejected("2011-12-09T12:50:00 UTC");
  ExpectRejected("2011-12-09T12:50:00+01");
  ExpectRejected("2011-12-09T12:50:00+01:00x");
  ExpectRejected("2011-12-09T12:50:00+1:00");
  ExpectRejected("1323435000abc");
  ExpectRejected("1323435000.5x");
  ExpectRejected("1323435000 1");
}

TEST(FormatTimestamp, KnownValues) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(1323435000), "2011-12-09T12:50:00Z");
  EXPECT_EQ(FormatTimestamp(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(1709251199), "2024-02-29T23:59:59Z");
  EXPECT_EQ(FormatTimestamp(2147483647), "2038-01-19T03:14:07Z");
  EXPECT_EQ(FormatTimestamp(4102444800), "2100-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(253402300799), "9999-12-31T23:59:59Z");
}

TEST(FormatTimestamp, NegativeTimes) {
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatTimestamp(-86399), "1969-12-31T00:00:01Z");
  EXPECT_EQ(FormatTimestamp(-86400), "1969-12-31T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(-86401), "1969-12-30T23:59:59Z");
  EXPECT_EQ(FormatTimestamp(-2208988800), "1900-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(-11670912000), "1600-03-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(-62135596800), "0001-01-01T00:00:00Z");
}

TEST(FormatTimestamp, RoundTripsThroughParse) {
  // Every ~7.3 hours over 1960..2040 (crosses 0, leap days, century 2000), plus the seconds
  // around midnight of the epoch.
  for (UnixSeconds t = -315619200; t <= 2208988800; t += 26281) {
    auto back = ParseTimestamp(FormatTimestamp(t));
    ASSERT_TRUE(back.ok()) << t << " " << FormatTimestamp(t);
    ASSERT_EQ(*back, t) << FormatTimestamp(t);
  }
  for (UnixSeconds t = -90000; t <= 90000; ++t) {
    auto back = ParseTimestamp(FormatTimestamp(t));
    ASSERT_TRUE(back.ok()) << t;
    ASSERT_EQ(*back, t) << FormatTimestamp(t);
  }
}

TEST(DaysFromCivil, KnownDates) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);   // 951868800 / 86400
  EXPECT_EQ(DaysFromCivil(2011, 12, 9), 15317);  // 1323388800 / 86400
  EXPECT_EQ(DaysFromCivil(1900, 1, 1), -25567);  // -2208988800 / 86400
}

}  // namespace
}  // namespace affinity
