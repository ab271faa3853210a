#include "affinity/time_util.h"

#include <charconv>
#include <cstdio>

namespace affinity {
namespace {

bool ParseFixedDigits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

Status Bad(std::string_view text) {
  return Status::InvalidArgument("cannot parse time '" + std::string(text) +
                                     "' (expected ISO 8601 such as 2011-12-09T12:50:00Z, or Unix "
                                     "seconds)",
                                 "time");
}

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

Result<UnixSeconds> ParseTimestamp(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return Bad(text);

  // Unix seconds: digits (optionally signed, optionally with a fraction), no '-' inside.
  if (s.size() < 10 || s[4] != '-') {
    size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), v);
    if (ec != std::errc() || p != whole.data() + whole.size()) return Bad(text);
    // Years 1 .. 9999, so that adding days or horizons to a time cannot overflow.
    if (v < -62135596800 || v > 253402300799) return Bad(text);
    if (dot != std::string_view::npos) {
      std::string_view frac = s.substr(dot + 1);
      if (frac.empty()) return Bad(text);
      for (char c : frac) {
        if (c < '0' || c > '9') return Bad(text);
      }
    }
    return v;
  }

  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ParseFixedDigits(s, 0, 4, &year) || s[4] != '-' || !ParseFixedDigits(s, 5, 2, &month) ||
      s.size() < 10 || s[7] != '-' || !ParseFixedDigits(s, 8, 2, &day)) {
    return Bad(text);
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, static_cast<unsigned>(month))) {
    return Bad(text);
  }
  size_t pos = 10;
  int64_t offset_seconds = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != ' ') return Bad(text);
    ++pos;
    if (!ParseFixedDigits(s, pos, 2, &hour) || pos + 2 >= s.size() || s[pos + 2] != ':' ||
        !ParseFixedDigits(s, pos + 3, 2, &minute)) {
      return Bad(text);
    }
    pos += 5;
    if (pos < s.size() && s[pos] == ':') {
      if (!ParseFixedDigits(s, pos + 1, 2, &second)) return Bad(text);
      pos += 3;
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        if (pos == start) return Bad(text);
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return Bad(text);
    if (pos < s.size()) {
      if (s[pos] == 'Z' && pos + 1 == s.size()) {
        pos = s.size();
      } else if (s[pos] == '+' || s[pos] == '-') {
        int64_t oh = 0, om = 0;
        int sign = s[pos] == '+' ? 1 : -1;
        if (!ParseFixedDigits(s, pos + 1, 2, &oh)) return Bad(text);
        size_t mpos = pos + 3;
        if (mpos < s.size() && s[mpos] == ':') ++mpos;
        if (!ParseFixedDigits(s, mpos, 2, &om) || mpos + 2 != s.size() || oh > 23 || om > 59) {
          return Bad(text);
        }
        offset_seconds = sign * (oh * 3600 + om * 60);
        pos = s.size();
      } else {
        return Bad(text);
      }
    }
  }
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
}

std::string FormatTimestamp(UnixSeconds t) {
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  // civil_from_days (Hinnant).
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  return buf;
}

}  // namespace affinity
