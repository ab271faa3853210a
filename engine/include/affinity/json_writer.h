// JsonWriter: JSON text written straight into a string, for the HTTP server's hot routes
// (recommendations, similar, audience), where building an nlohmann::json tree first (a std::map per
// object, an allocation per value) cost more than finding the answer.
//
// The caller writes a well-formed document: Key before each member value, balanced
// Begin/End calls. Strings are escaped as JSON requires; a string that is not valid UTF-8 is
// written with U+FFFD for its bad bytes (as nlohmann's error_handler_t::replace does). Numbers:
// shortest round-trip form (std::to_chars); non-finite numbers are written as null.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace affinity {

class JsonWriter {
 public:
  // `reserve`: bytes to allocate up front (a large document then grows without copies).
  explicit JsonWriter(size_t reserve = 1024) { out_.reserve(reserve); }

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  // The name of the next member (inside an object).
  JsonWriter& Key(std::string_view name) {
    Separate();
    Escaped(name);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

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
    out_ += '"';
    out_.append(prefix).append(s);
    out_ += '"';
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    return *this;
  }
  template <typename F>
  JsonWriter& Number(F v) {
    static_assert(std::is_floating_point_v<F>);
    Separate();
    if (!std::isfinite(v)) {
      out_ += "null";
      return *this;
    }
    char buf[32];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    return *this;
  }
  JsonWriter& Bool(bool v) {
    Separate();
    out_ += v ? "true" : "false";
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    out_ += "null";
    return *this;
  }

  std::string Take() { return std::move(out_); }

 private:
  JsonWriter& Open(char c) {
    Separate();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& Close(char c) {
    out_ += c;
    first_.pop_back();
    return *this;
  }
  // A comma before every value or key but the first of its container; none after a key.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }

  // Printable ASCII other than '"' and '\\': written as it is (ids and keys usually are).
  static bool Plain(std::string_view s) {
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
    }
    return true;
  }

  void Escaped(std::string_view s) {
    if (Plain(s)) {  // one pass instead of the UTF-8 check and the escape scan
      out_ += '"';
      out_.append(s);
      out_ += '"';
      return;
    }
    if (!ValidUtf8(s)) {
      out_ += nlohmann::json(std::string(s))
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
    out_ += '"';
    size_t run = 0;  // start of the characters not yet copied (they need no escape)
    for (size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        case '\b':
          out_ += "\\b";
          break;
        case '\f':
          out_ += "\\f";
          break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          out_ += "\\u00";
          out_ += kHex[c >> 4];
          out_ += kHex[c & 15];
        }
      }
    }
    out_.append(s.data() + run, s.size() - run);
    out_ += '"';
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

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace affinity
