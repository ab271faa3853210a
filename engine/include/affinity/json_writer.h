// JsonWriter: JSON text written straight into a string, for the HTTP server's hot routes
// (recommendations, similar, audience), where building an nlohmann::json tree first (a std::map per
// object, an allocation per value) cost more than finding the answer.
//
// The caller writes a well-formed document: Key before each member value, balanced
// Begin/End calls. Strings are escaped as JSON requires; a string that is not valid UTF-8 is
// written with U+FFFD for its bad bytes (as nlohmann's error_handler_t::replace does). Numbers:
// shortest round-trip form (std::to_chars); non-finite numbers are written as null.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace affinity {

// Printable ASCII other than '"' and '\\': written in JSON as it is.
constexpr bool IsPlainName(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

// A member name that needs no escape, checked when compiling (a string literal that is not
// IsPlainName does not compile): w.Key(PlainName("customer")).
struct PlainName {
  template <size_t N>
  explicit consteval PlainName(const char (&name)[N]) : text(name, N - 1) {
    if (name[N - 1] != '\0' || !IsPlainName(text)) throw "a PlainName is a plain string literal";
  }
  std::string_view text;
};

class JsonWriter {
 public:
  // `reserve`: bytes to allocate up front (a large document then grows without copies).
  explicit JsonWriter(size_t reserve = 1024) { out_.resize(std::max<size_t>(reserve, 16)); }

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  // The name of the next member (inside an object).
  JsonWriter& Key(std::string_view name) {
    Separate();
    Escaped(name);
    Put(':');
    after_key_ = true;
    return *this;
  }
  // The same for a name known when compiling, checked then to need no escape: written with one
  // copy (the hot routes write a dozen names per listed customer).
  JsonWriter& Key(const PlainName& name);

  JsonWriter& String(std::string_view s) {
    Separate();
    Escaped(s);
    return *this;
  }
  // One string value: `prefix` followed by `s` (without building the joined string).
  JsonWriter& String(std::string_view prefix, std::string_view s) {
    Separate();
    if (!Plain(prefix) || !Plain(s)) {
      std::string joined(prefix);
      joined += s;
      Escaped(joined);
      return *this;
    }
    char* at = Room(prefix.size() + s.size() + 2);
    *at++ = '"';
    at = Copy(at, prefix);
    at = Copy(at, s);
    *at = '"';
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    char* at = Room(24);
    Unused(24 - static_cast<size_t>(std::to_chars(at, at + 24, v).ptr - at));
    return *this;
  }
  template <typename F>
  JsonWriter& Number(F v) {
    Separate();
    char* at = Room(32);
    Unused(32 - static_cast<size_t>(WriteNumber(at, v) - at));
    return *this;
  }
  JsonWriter& Bool(bool v) {
    Separate();
    Put(v ? std::string_view("true") : std::string_view("false"));
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    Put("null");
    return *this;
  }

  // One value written by the caller as raw JSON text (for a hot loop that writes many values of
  // one shape): BeginRaw places the separator and returns room for at most `max` bytes; the
  // caller writes the value there (well-formed JSON, strings escaped: see Plain and the static
  // writers below) and passes EndRaw the end of what it wrote (at most `max` bytes on).
  char* BeginRaw(size_t max) {
    Separate();
    return Room(max);
  }
  void EndRaw(const char* end) { size_ = static_cast<size_t>(end - out_.data()); }

  // For raw values: true if `s` can be written between quotes as it is (no control character,
  // quote, backslash or byte above 0x7f).
  static bool Plain(std::string_view s) { return IsPlainName(s); }
  // For raw values: copies `s` to `at` and returns its end.
  static char* Copy(char* at, std::string_view s) {
    if (!s.empty()) std::memcpy(at, s.data(), s.size());
    return at + s.size();
  }
  // Writes a number as Number does (at most 32 bytes: the shortest round-trip form, null when not
  // finite) and returns its end.
  template <typename F>
  static char* WriteNumber(char* at, F v) {
    static_assert(std::is_floating_point_v<F>);
    if (!std::isfinite(v)) return Copy(at, "null");
    return std::to_chars(at, at + 32, v).ptr;
  }

  // The document; the writer is empty afterwards.
  std::string Take() {
    out_.resize(size_);
    size_ = 0;
    return std::move(out_);
  }

 private:
  // The text is written into out_[0, size_): out_ is grown ahead (doubling) and cut to size_ by
  // Take, so that each piece is a bounds check and a copy rather than a call that may grow.
  [[gnu::always_inline]] char* Room(size_t n) {
    if (out_.size() - size_ < n) [[unlikely]] {
      Grow(n);
    }
    char* at = out_.data() + size_;
    size_ += n;
    return at;
  }
  [[gnu::noinline]] void Grow(size_t n) { out_.resize(std::max(2 * out_.size(), size_ + n)); }
  void Unused(size_t n) { size_ -= n; }  // of the last Room
  void Put(char c) { *Room(1) = c; }
  void Put(std::string_view s) { Copy(Room(s.size()), s); }

  JsonWriter& Open(char c) {
    Separate();
    Put(c);
    first_.push_back(true);
    return *this;
  }
  JsonWriter& Close(char c) {
    Put(c);
    first_.pop_back();
    return *this;
  }
  // A comma before every value or key but the first of its container; none after a key.
  [[gnu::always_inline]] void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) Put(',');
    first_.back() = false;
  }

  [[gnu::always_inline]] void Escaped(std::string_view s) {
    if (Plain(s)) [[likely]] {  // one pass instead of the UTF-8 check and the escape scan
      char* at = Room(s.size() + 2);
      *at++ = '"';
      at = Copy(at, s);
      *at = '"';
      return;
    }
    EscapedSlow(s);
  }
  [[gnu::noinline]] void EscapedSlow(std::string_view s) {
    if (!ValidUtf8(s)) {
      Put(nlohmann::json(std::string(s))
              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      return;
    }
    Put('"');
    size_t run = 0;  // start of the characters not yet copied (they need no escape)
    for (size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      Put(s.substr(run, i - run));
      run = i + 1;
      switch (c) {
        case '"':
          Put("\\\"");
          break;
        case '\\':
          Put("\\\\");
          break;
        case '\n':
          Put("\\n");
          break;
        case '\r':
          Put("\\r");
          break;
        case '\t':
          Put("\\t");
          break;
        case '\b':
          Put("\\b");
          break;
        case '\f':
          Put("\\f");
          break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          Put("\\u00");
          Put(kHex[c >> 4]);
          Put(kHex[c & 15]);
        }
      }
    }
    Put(s.substr(run));
    Put('"');
  }

  // Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
  static bool ValidUtf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        ++i;
        continue;
      }
      size_t extra = 0;
      unsigned char lo = 0x80, hi = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        extra = 1;
      } else if (c >= 0xe0 && c <= 0xef) {
        extra = 2;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        extra = 3;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
      } else {
        return false;
      }
      if (i + extra >= s.size()) return false;  // truncated sequence
      for (size_t k = 1; k <= extra; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
      }
      i += extra + 1;
    }
    return true;
  }

  std::string out_;  // the text in [0, size_), room after it
  size_t size_ = 0;
  std::vector<char> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

inline JsonWriter& JsonWriter::Key(const PlainName& name) {
  Separate();
  char* at = Room(name.text.size() + 3);
  *at++ = '"';
  at = Copy(at, name.text);
  *at++ = '"';
  *at = ':';
  after_key_ = true;
  return *this;
}

}  // namespace affinity
