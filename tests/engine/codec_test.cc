#include "codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace affinity::codec {
namespace {

// RocksDB's default comparator: memcmp order over unsigned bytes, shorter first on a tie.
bool BytewiseLess(const std::string& a, const std::string& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  });
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

Event SampleEvent() {
  Event e;
  e.customer = CustomerId{7};
  e.product = ProductId{42};
  e.type = EventType::kPurchase;
  e.time = 1323435000;
  e.quantity = 3.0;
  e.unit_price = 2.55;
  e.channel = "web";
  e.event_id = "536365:1";
  return e;
}

void ExpectSameEvent(const Event& want, const Event& got) {
  EXPECT_EQ(want.customer, got.customer);
  EXPECT_EQ(want.product, got.product);
  EXPECT_EQ(want.type, got.type);
  EXPECT_EQ(want.time, got.time);
  // Bitwise comparison: -0.0, NaN and infinities must survive unchanged.
  EXPECT_EQ(0, std::memcmp(&want.quantity, &got.quantity, sizeof(double)));
  EXPECT_EQ(0, std::memcmp(&want.unit_price, &got.unit_price, sizeof(double)));
  EXPECT_EQ(want.channel, got.channel);
  EXPECT_EQ(want.event_id, got.event_id);
}

// ---- Big-endian helpers ----

TEST(BigEndian, PutU32WritesMostSignificantByteFirst) {
  std::string out = "x";
  PutU32BE(&out, 0x01020304u);
  EXPECT_EQ(out, Bytes({'x', 0x01, 0x02, 0x03, 0x04}));
}

TEST(BigEndian, PutU64WritesMostSignificantByteFirst) {
  std::string out;
  PutU64BE(&out, 0x0102030405060708ull);
  EXPECT_EQ(out, Bytes({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
}

TEST(BigEndian, GetReadsHighBytesWithoutSignExtension) {
  std::string b = Bytes({0xFF, 0x80, 0x00, 0x01, 0xFE, 0xDC, 0xBA, 0x98});
  EXPECT_EQ(GetU32BE(b.data()), 0xFF800001u);
  EXPECT_EQ(GetU32BE(b.data() + 4), 0xFEDCBA98u);
  EXPECT_EQ(GetU64BE(b.data()), 0xFF800001FEDCBA98ull);
}

TEST(BigEndian, RoundTripsEdgeValues) {
  for (uint32_t v : {0u, 1u, 0x7Fu, 0x80u, 0xFFu, 0x100u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu}) {
    std::string out;
    PutU32BE(&out, v);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(GetU32BE(out.data()), v);
  }
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0xFFFFFFFF}, uint64_t{0x100000000},
                     uint64_t{1} << 63, ~uint64_t{0}}) {
    std::string out;
    PutU64BE(&out, v);
    ASSERT_EQ(out.size(), 8u);
    EXPECT_EQ(GetU64BE(out.data()), v);
  }
}

TEST(BigEndian, EncodedOrderIsNumericOrder) {
  std::vector<uint32_t> values = {0, 1, 255, 256, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
  for (size_t i = 0; i + 1 < values.size(); ++i) {
    EXPECT_TRUE(BytewiseLess(U32Key(values[i]), U32Key(values[i + 1])))
        << values[i] << " vs " << values[i + 1];
  }
}

TEST(U32Key, DecodesBack) {
  EXPECT_EQ(U32Key(0x0A0B0C0Du), Bytes({0x0A, 0x0B, 0x0C, 0x0D}));
  auto v = DecodeU32(U32Key(123456789));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 123456789u);
}

TEST(U32Key, DecodeRejectsWrongSize) {
  for (std::string bad : {std::string(), std::string(3, '\0'), std::string(5, '\0')}) {
    auto v = DecodeU32(bad);
    ASSERT_FALSE(v.ok()) << bad.size();
    EXPECT_EQ(v.status().code(), StatusCode::kCorruption);
  }
}

TEST(IdsKey, PrefixFollowedByIdBytes) {
  EXPECT_EQ(IdsKey(kIdsCustomerByExternal, "C-17"), "cC-17");
  EXPECT_EQ(IdsKey(kIdsProductByExternal, ""), "p");
  EXPECT_EQ(IdsKey(kIdsCustomerByInternal, uint32_t{258}), Bytes({'C', 0, 0, 1, 2}));
  EXPECT_EQ(IdsKey(kIdsProductByInternal, uint32_t{0xFFFFFFFF}),
            Bytes({'P', 0xFF, 0xFF, 0xFF, 0xFF}));
}

// ---- Event keys ----

TEST(EventKey, LayoutIsCustomerTimeHash) {
  std::string key = EventKey(CustomerId{0x01020304}, 0, "a");
  ASSERT_EQ(key.size(), kEventKeySize);
  // Customer big-endian.
  EXPECT_EQ(key.substr(0, 4), Bytes({0x01, 0x02, 0x03, 0x04}));
  // Time 0 XOR 2^63.
  EXPECT_EQ(key.substr(4, 8), Bytes({0x80, 0, 0, 0, 0, 0, 0, 0}));
  // FNV-1a-64("a") = 0xaf63dc4c8601ec8c, big-endian.
  EXPECT_EQ(key.substr(12, 8), Bytes({0xaf, 0x63, 0xdc, 0x4c, 0x86, 0x01, 0xec, 0x8c}));
}

TEST(EventKey, NegativeTimeFlipsOnlyTheSignBit) {
  std::string key = EventKey(CustomerId{0}, -1, "");
  // -1 = 0xFFFF...FF; XOR 2^63 = 0x7FFF...FF.
  EXPECT_EQ(key.substr(4, 8), Bytes({0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
}

TEST(EventKey, SortsByTimeWithinACustomerIncludingNegativeTimes) {
  const std::vector<UnixSeconds> times = {std::numeric_limits<int64_t>::min(),
                                          -4102444800,
                                          -86400,
                                          -256,
                                          -255,
                                          -2,
                                          -1,
                                          0,
                                          1,
                                          2,
                                          255,
                                          256,
                                          1323435000,
                                          std::numeric_limits<int64_t>::max()};
  for (size_t i = 0; i + 1 < times.size(); ++i) {
    // Different event ids: the hash must not override the time order.
    std::string a = EventKey(CustomerId{5}, times[i], "zzz");
    std::string b = EventKey(CustomerId{5}, times[i + 1], "aaa");
    EXPECT_TRUE(BytewiseLess(a, b)) << times[i] << " vs " << times[i + 1];
    EXPECT_FALSE(BytewiseLess(b, a)) << times[i] << " vs " << times[i + 1];
  }
}

TEST(EventKey, SortsByCustomerFirst) {
  // Customer 255 = 00 00 00 FF, 256 = 00 00 01 00: a little-endian or text encoding would get
  // this wrong.
  const std::vector<uint32_t> customers = {0,     1,          255,        256,       65535,
                                           65536, 0x00FFFFFF, 0x01000000, 0xFFFFFFFF};
  for (size_t i = 0; i + 1 < customers.size(); ++i) {
    // The earlier customer has the latest possible time; the later one the earliest.
    std::string a =
        EventKey(CustomerId{customers[i]}, std::numeric_limits<int64_t>::max(), "event-x");
    std::string b =
        EventKey(CustomerId{customers[i + 1]}, std::numeric_limits<int64_t>::min(), "event-y");
    EXPECT_TRUE(BytewiseLess(a, b)) << customers[i] << " vs " << customers[i + 1];
  }
}

TEST(EventKey, FullSortMatchesCustomerThenTime) {
  struct Item {
    uint32_t customer;
    UnixSeconds time;
  };
  std::vector<Item> items;
  for (uint32_t c : {256u, 0u, 255u, 1u}) {
    for (UnixSeconds t :
         {UnixSeconds{5}, UnixSeconds{-5}, UnixSeconds{0}, UnixSeconds{-1}, UnixSeconds{1}}) {
      items.push_back({c, t});
    }
  }
  std::vector<std::pair<std::string, size_t>> keys;
  for (size_t i = 0; i < items.size(); ++i) {
    keys.emplace_back(
        EventKey(CustomerId{items[i].customer}, items[i].time, "e" + std::to_string(i)), i);
  }
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return BytewiseLess(a.first, b.first); });
  std::vector<std::pair<uint32_t, UnixSeconds>> got;
  for (const auto& k : keys) got.emplace_back(items[k.second].customer, items[k.second].time);
  std::vector<std::pair<uint32_t, UnixSeconds>> want;
  for (uint32_t c : {0u, 1u, 255u, 256u}) {
    for (UnixSeconds t : {-5, -1, 0, 1, 5}) want.emplace_back(c, t);
  }
  EXPECT_EQ(got, want);
}

TEST(EventKey, SameCustomerAndTimeDifferOnlyInHash) {
  std::string a = EventKey(CustomerId{3}, 100, "one");
  std::string b = EventKey(CustomerId{3}, 100, "two");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 12), b.substr(0, 12));
  EXPECT_EQ(a, EventKey(CustomerId{3}, 100, "one"));  // deterministic
}

TEST(EventPrefix, IsPrefixOfOwnKeysOnly) {
  EXPECT_EQ(EventPrefix(CustomerId{256}), Bytes({0, 0, 1, 0}));
  for (uint32_t c : {0u, 1u, 255u, 256u, 0xFFFFFFFFu}) {
    std::string prefix = EventPrefix(CustomerId{c});
    ASSERT_EQ(prefix.size(), 4u);
    for (UnixSeconds t : {std::numeric_limits<int64_t>::min(), UnixSeconds{-1}, UnixSeconds{0},
                          std::numeric_limits<int64_t>::max()}) {
      EXPECT_TRUE(EventKey(CustomerId{c}, t, "id").starts_with(prefix)) << c << " " << t;
    }
    for (uint32_t other : {0u, 1u, 255u, 256u, 0xFFFFFFFFu}) {
      if (other == c) continue;
      for (UnixSeconds t : {UnixSeconds{-1}, UnixSeconds{0}, UnixSeconds{1}}) {
        EXPECT_FALSE(EventKey(CustomerId{other}, t, "id").starts_with(prefix))
            << c << " vs " << other;
      }
    }
  }
}

// ---- Event values ----

TEST(EventValue, LayoutOfASmallEvent) {
  Event e;
  e.customer = CustomerId{1};
  e.product = ProductId{0x01020304};
  e.type = EventType::kReturn;
  e.quantity = 1.0;    // 0x3FF0000000000000
  e.unit_price = 2.0;  // 0x4000000000000000
  e.channel = "ab";
  e.event_id = "";
  std::string want = Bytes({1, 2,   0x04, 0x03, 0x02, 0x01,              // version, type, product
                            0, 0,   0,    0,    0,    0,    0xF0, 0x3F,  // quantity LE
                            0, 0,   0,    0,    0,    0,    0,    0x40,  // unit price LE
                            2, 'a', 'b',  0});                           // channel, event id
  EXPECT_EQ(EncodeEventValue(e), want);
}

TEST(EventValue, RoundTripsEveryEventType) {
  for (EventType type :
       {EventType::kPurchase, EventType::kReturn, EventType::kView, EventType::kCart}) {
    Event e = SampleEvent();
    e.type = type;
    Event got;
    ASSERT_TRUE(
        DecodeEvent(EventKey(e.customer, e.time, e.event_id), EncodeEventValue(e), &got).ok());
    ExpectSameEvent(e, got);
  }
}

TEST(EventValue, RoundTripsEmptyAndLongStrings) {
  // 127/128 bytes straddle the one-byte varint limit; 20000 needs three varint bytes.
  for (size_t channel_len : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{20000}}) {
    for (size_t id_len : {size_t{0}, size_t{127}, size_t{128}, size_t{16384}}) {
      Event e = SampleEvent();
      e.channel = std::string(channel_len, 'c');
      e.event_id.clear();
      for (size_t i = 0; i < id_len; ++i) e.event_id.push_back(static_cast<char>(i % 256));
      std::string value = EncodeEventValue(e);
      auto varint_len = [](size_t n) { return n < 128 ? 1u : n < 16384 ? 2u : 3u; };
      EXPECT_EQ(value.size(),
                22 + varint_len(channel_len) + channel_len + varint_len(id_len) + id_len);
      Event got;
      ASSERT_TRUE(DecodeEvent(EventKey(e.customer, e.time, e.event_id), value, &got).ok())
          << channel_len << " " << id_len;
      ExpectSameEvent(e, got);
    }
  }
}

TEST(EventValue, RoundTripsOddDoublesAndExtremeIds) {
  const double kOdd[] = {0.0,
                         -0.0,
                         0.1,
                         1.0 / 3.0,
                         -2.5,
                         5e-324,  // smallest denormal
                         std::numeric_limits<double>::max(),
                         std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(),
                         std::numeric_limits<double>::quiet_NaN()};
  for (double q : kOdd) {
    Event e = SampleEvent();
    e.customer = CustomerId{0xFFFFFFFF};
    e.product = ProductId{0xFFFFFFFF};
    e.time = std::numeric_limits<int64_t>::min();
    e.quantity = q;
    e.unit_price = -q;
    Event got;
    ASSERT_TRUE(
        DecodeEvent(EventKey(e.customer, e.time, e.event_id), EncodeEventValue(e), &got).ok());
    ExpectSameEvent(e, got);
  }
}

TEST(EventValue, TimesAroundZeroRoundTripThroughTheKey) {
  for (UnixSeconds t : {UnixSeconds{-86401}, UnixSeconds{-1}, UnixSeconds{0}, UnixSeconds{1},
                        std::numeric_limits<int64_t>::max()}) {
    Event e = SampleEvent();
    e.time = t;
    Event got;
    ASSERT_TRUE(
        DecodeEvent(EventKey(e.customer, e.time, e.event_id), EncodeEventValue(e), &got).ok());
    EXPECT_EQ(got.time, t);
  }
}

TEST(DecodeEvent, RejectsWrongKeySize) {
  Event e = SampleEvent();
  std::string key = EventKey(e.customer, e.time, e.event_id);
  std::string value = EncodeEventValue(e);
  for (std::string bad : {std::string(), key.substr(0, 19), key + "x", key.substr(0, 4)}) {
    Event got;
    Status s = DecodeEvent(bad, value, &got);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << bad.size();
  }
}

TEST(DecodeEvent, RejectsUnknownVersion) {
  Event e = SampleEvent();
  std::string key = EventKey(e.customer, e.time, e.event_id);
  for (int version : {0, 2, 0xFF}) {
    std::string value = EncodeEventValue(e);
    value[0] = static_cast<char>(version);
    Event got;
    EXPECT_EQ(DecodeEvent(key, value, &got).code(), StatusCode::kCorruption) << version;
  }
  Event got;
  EXPECT_EQ(DecodeEvent(key, "", &got).code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeEvent(key, Bytes({1}), &got).code(), StatusCode::kCorruption);
}

TEST(DecodeEvent, RejectsUnknownType) {
  Event e = SampleEvent();
  std::string key = EventKey(e.customer, e.time, e.event_id);
  for (int type : {0, 5, 0x80, 0xFF}) {
    std::string value = EncodeEventValue(e);
    value[1] = static_cast<char>(type);
    Event got;
    EXPECT_EQ(DecodeEvent(key, value, &got).code(), StatusCode::kCorruption) << type;
  }
}

TEST(DecodeEvent, RejectsEveryTruncation) {
  Event e = SampleEvent();
  std::string key = EventKey(e.customer, e.time, e.event_id);
  std::string value = EncodeEventValue(e);
  for (size_t n = 0; n < value.size(); ++n) {
    Event got;
    EXPECT_EQ(DecodeEvent(key, value.substr(0, n), &got).code(), StatusCode::kCorruption) << n;
  }
}

TEST(DecodeEvent, RejectsTrailingBytes) {
  Event e = SampleEvent();
  std::string key = EventKey(e.customer, e.time, e.event_id);
  for (std::string extra : {std::string(1, '\0'), std::string("xyz")}) {
    Event got;
    EXPECT_EQ(DecodeEvent(key, EncodeEventValue(e) + extra, &got).code(), StatusCode::kCorruption);
  }
}

TEST(DecodeEvent, RejectsLengthPastTheEnd) {
  Event e = SampleEvent();
  e.channel = "";
  e.event_id = "";
  std::string value = EncodeEventValue(e);
  // Last byte is the event id length (0); claim 5 bytes that are not there.
  value.back() = 5;
  Event got;
  EXPECT_EQ(DecodeEvent(EventKey(e.customer, e.time, ""), value, &got).code(),
            StatusCode::kCorruption);
  // An unterminated varint (continuation bit set on the last byte).
  value.back() = static_cast<char>(0x80);
  EXPECT_EQ(DecodeEvent(EventKey(e.customer, e.time, ""), value, &got).code(),
            StatusCode::kCorruption);
}

// ---- FNV-1a-64 ----

TEST(Fnv1a64, KnownVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("b"), 0xaf63df4c8601f1a5ull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(Fnv1a64, HashesBytesAsUnsigned) {
  // 0xFF as a byte: (offset ^ 0xFF) * prime, not sign-extended.
  uint64_t want = (0xcbf29ce484222325ull ^ 0xFFull) * 0x100000001b3ull;
  EXPECT_EQ(Fnv1a64(std::string(1, '\xFF')), want);
  // Embedded NULs count.
  EXPECT_NE(Fnv1a64(std::string("a\0", 2)), Fnv1a64("a"));
}

// ---- Customer and product records ----

CustomerProfile FullCustomer() {
  CustomerProfile p;
  p.email = "zoe@example.com";
  p.name = "Zoë \"Z\" O'Neil\n";
  p.country = "GB";
  p.opted_out = true;
  p.interests = std::vector<std::string>{"Home/Kitchen", "Garden"};
  p.created_at = -1234567890123;
  return p;
}

ProductAttributes FullProduct() {
  ProductAttributes a;
  a.title = "WHITE HANGING HEART T-LIGHT HOLDER";
  a.description = "Heart-shaped, for a tea light.\nWhite metal.";
  a.category = std::vector<std::string>{"Home", "Decor", "Candles"};
  a.brand = "Acme";
  a.price = 0.1;
  a.tags = std::vector<std::string>{"gift", "", "white"};
  a.created_at = 1323435000;
  a.available = false;
  return a;
}

void ExpectSameCustomer(const CustomerProfile& want, const CustomerProfile& got) {
  EXPECT_EQ(want.email, got.email);
  EXPECT_EQ(want.name, got.name);
  EXPECT_EQ(want.country, got.country);
  EXPECT_EQ(want.opted_out, got.opted_out);
  EXPECT_EQ(want.interests, got.interests);
  EXPECT_EQ(want.created_at, got.created_at);
}

void ExpectSameProduct(const ProductAttributes& want, const ProductAttributes& got) {
  EXPECT_EQ(want.title, got.title);
  EXPECT_EQ(want.description, got.description);
  EXPECT_EQ(want.category, got.category);
  EXPECT_EQ(want.brand, got.brand);
  EXPECT_EQ(want.price, got.price);
  EXPECT_EQ(want.tags, got.tags);
  EXPECT_EQ(want.created_at, got.created_at);
  EXPECT_EQ(want.available, got.available);
}

TEST(CustomerRecord, RoundTripsAllFields) {
  CustomerProfile p = FullCustomer();
  auto got = DecodeCustomer(EncodeCustomer(p));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameCustomer(p, *got);
}

TEST(CustomerRecord, RoundTripsNoFields) {
  std::string encoded = EncodeCustomer(CustomerProfile{});
  EXPECT_EQ(encoded, R"({"v":1})");
  auto got = DecodeCustomer(encoded);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameCustomer(CustomerProfile{}, *got);
}

TEST(CustomerRecord, EmptyListStaysSet) {
  CustomerProfile p;
  p.interests = std::vector<std::string>{};
  p.opted_out = false;
  auto got = DecodeCustomer(EncodeCustomer(p));
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->interests.has_value());
  EXPECT_TRUE(got->interests->empty());
  EXPECT_EQ(got->opted_out, false);
  EXPECT_FALSE(got->email.has_value());
}

TEST(CustomerRecord, NullFieldsReadAsUnset) {
  auto got = DecodeCustomer(R"({"v":1,"email":null,"name":"Ann","created_at":null})");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->email.has_value());
  EXPECT_EQ(got->name, "Ann");
  EXPECT_FALSE(got->created_at.has_value());
}

TEST(CustomerRecord, InvalidUtf8DoesNotThrow) {
  CustomerProfile p;
  p.name = "Jos\xE9";  // Latin-1 e-acute: not valid UTF-8
  std::string encoded;
  ASSERT_NO_THROW(encoded = EncodeCustomer(p));
  auto got = DecodeCustomer(encoded);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  // The invalid byte is replaced by U+FFFD (EF BF BD).
  EXPECT_EQ(got->name, "Jos\xEF\xBF\xBD");
}

TEST(ProductRecord, RoundTripsAllFields) {
  ProductAttributes a = FullProduct();
  auto got = DecodeProduct(EncodeProduct(a));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameProduct(a, *got);
}

TEST(ProductRecord, RoundTripsOddPrices) {
  for (double price : {0.0, 19.99, 1.0 / 3.0, 1e-9, 123456789.125}) {
    ProductAttributes a;
    a.price = price;
    auto got = DecodeProduct(EncodeProduct(a));
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->price, price);
  }
}

TEST(ProductRecord, RoundTripsNoFields) {
  std::string encoded = EncodeProduct(ProductAttributes{});
  EXPECT_EQ(encoded, R"({"v":1})");
  auto got = DecodeProduct(encoded);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameProduct(ProductAttributes{}, *got);
}

TEST(ProductRecord, InvalidUtf8DoesNotThrow) {
  ProductAttributes a;
  a.title =
      "CR\xC8"
      "ME BRUL\xC9"
      "E";
  a.tags = std::vector<std::string>{"\xFF"};
  std::string encoded;
  ASSERT_NO_THROW(encoded = EncodeProduct(a));
  auto got = DecodeProduct(encoded);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->title,
            "CR\xEF\xBF\xBDME BRUL\xEF\xBF\xBD"
            "E");
  EXPECT_EQ(got->tags, std::vector<std::string>{"\xEF\xBF\xBD"});
}

const char* const kNotRecords[] = {
    "",
    "not json",
    "{\"v\":1",  // truncated
    "[1,2]",
    "\"v\"",
    "42",
    "null",
    "{}",                  // missing v
    "{\"name\":\"Ann\"}",  // missing v
    "{\"v\":0}",
    "{\"v\":2}",
    "{\"v\":-1}",
    "{\"v\":\"1\"}",
    "{\"v\":1.0}",
    "{\"v\":1.5}",
    "{\"v\":true}",
    "{\"v\":null}",
    "{\"v\":[1]}",
    "{\"v\":4294967297}",  // 2^32 + 1: must not wrap around to 1
};

TEST(CustomerRecord, DecodeRejectsNonRecords) {
  for (const char* text : kNotRecords) {
    auto got = DecodeCustomer(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << text;
  }
}

TEST(ProductRecord, DecodeRejectsNonRecords) {
  for (const char* text : kNotRecords) {
    auto got = DecodeProduct(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << text;
  }
}

TEST(CustomerRecord, DecodeRejectsFieldsOfTheWrongType) {
  for (const char* text : {
           R"({"v":1,"email":5})",
           R"({"v":1,"name":["Ann"]})",
           R"({"v":1,"country":{}})",
           R"({"v":1,"opted_out":"yes"})",
           R"({"v":1,"opted_out":1})",
           R"({"v":1,"interests":"Garden"})",
           R"({"v":1,"interests":[1,2]})",
           R"({"v":1,"created_at":"2011-12-09"})",
           R"({"v":1,"created_at":true})",
       }) {
    auto got = DecodeCustomer(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << text;
  }
}

TEST(ProductRecord, DecodeRejectsFieldsOfTheWrongType) {
  for (const char* text : {
           R"({"v":1,"title":12})",
           R"({"v":1,"category":"Home/Decor"})",
           R"({"v":1,"brand":false})",
           R"({"v":1,"price":"9.99"})",
           R"({"v":1,"tags":[null]})",
           R"({"v":1,"created_at":[]})",
           R"({"v":1,"available":"true"})",
           R"({"v":1,"available":0})",
       }) {
    auto got = DecodeProduct(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << text;
  }
}

TEST(CustomerRecord, IgnoresUnknownFields) {
  auto got = DecodeCustomer(R"({"v":1,"future_field":[1,2,3],"country":"FR"})");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->country, "FR");
}

// ---- MergeInto ----

TEST(MergeInto, CustomerSetFieldsReplaceUnsetFieldsKept) {
  CustomerProfile stored = FullCustomer();
  CustomerProfile update;
  update.email = "new@example.com";
  update.opted_out = false;  // set to false is still set
  update.interests = std::vector<std::string>{};
  MergeInto(&stored, update);
  EXPECT_EQ(stored.email, "new@example.com");
  EXPECT_EQ(stored.opted_out, false);
  ASSERT_TRUE(stored.interests.has_value());
  EXPECT_TRUE(stored.interests->empty());
  // Kept.
  EXPECT_EQ(stored.name, FullCustomer().name);
  EXPECT_EQ(stored.country, "GB");
  EXPECT_EQ(stored.created_at, FullCustomer().created_at);
}

TEST(MergeInto, CustomerIntoEmptyTakesEverything) {
  CustomerProfile stored;
  MergeInto(&stored, FullCustomer());
  ExpectSameCustomer(FullCustomer(), stored);
}

TEST(MergeInto, CustomerEmptyUpdateChangesNothing) {
  CustomerProfile stored = FullCustomer();
  MergeInto(&stored, CustomerProfile{});
  ExpectSameCustomer(FullCustomer(), stored);
}

TEST(MergeInto, CustomerCreatedAtOnlyMovesEarlier) {
  CustomerProfile stored;
  stored.created_at = 1000;
  CustomerProfile later;
  later.created_at = 2000;
  MergeInto(&stored, later);
  EXPECT_EQ(stored.created_at, 1000);
  CustomerProfile earlier;
  earlier.created_at = -5;
  MergeInto(&stored, earlier);
  EXPECT_EQ(stored.created_at, -5);
  MergeInto(&stored, CustomerProfile{});
  EXPECT_EQ(stored.created_at, -5);
  CustomerProfile none;
  MergeInto(&none, later);
  EXPECT_EQ(none.created_at, 2000);
}

TEST(MergeInto, ProductSetFieldsReplaceUnsetFieldsKept) {
  ProductAttributes stored = FullProduct();
  ProductAttributes update;
  update.title = "RED HEART";
  update.price = 3.5;
  update.available = true;
  MergeInto(&stored, update);
  EXPECT_EQ(stored.title, "RED HEART");
  EXPECT_EQ(stored.price, 3.5);
  EXPECT_EQ(stored.available, true);
  EXPECT_EQ(stored.category, FullProduct().category);
  EXPECT_EQ(stored.brand, "Acme");
  EXPECT_EQ(stored.tags, FullProduct().tags);
  EXPECT_EQ(stored.created_at, 1323435000);
}

TEST(MergeInto, ProductCreatedAtOnlyMovesEarlier) {
  ProductAttributes stored;
  stored.created_at = 1000;
  ProductAttributes later;
  later.created_at = 1001;
  MergeInto(&stored, later);
  EXPECT_EQ(stored.created_at, 1000);
  ProductAttributes earlier;
  earlier.created_at = 999;
  MergeInto(&stored, earlier);
  EXPECT_EQ(stored.created_at, 999);
  ProductAttributes none;
  MergeInto(&none, earlier);
  EXPECT_EQ(none.created_at, 999);
}

}  // namespace
}  // namespace affinity::codec
