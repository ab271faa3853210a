// Parsing and formatting of timestamps (UTC).
#pragma once

#include <string>
#include <string_view>

#include "affinity/status.h"
#include "affinity/types.h"

namespace affinity {

// Parses, as UTC unless an offset is given:
//   "2011-12-09", "2011-12-09 12:50", "2011-12-09 12:50:00", "2011-12-09T12:50:00.250Z",
//   "2011-12-09T12:50:00+01:00" (fractions of a second are dropped), or Unix seconds ("1323435000",
//   optionally with a fraction). InvalidArgument (field "time") with the offending text otherwise,
// including out-of-range months, days, hours and minutes, and Unix seconds outside years
// 1..9999. A date alone means 00:00:00 of that day.
Result<UnixSeconds> ParseTimestamp(std::string_view text);

// "2011-12-09T12:50:00Z".
std::string FormatTimestamp(UnixSeconds t);

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

}  // namespace affinity
