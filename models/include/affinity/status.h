// Status and Result<T>: how every fallible call in Affinity reports failure.
//
// No exception crosses the public API. A call that can fail returns `Status` (or `Result<T>`,
// which holds either a value or a non-OK Status). Both are [[nodiscard]].
//
// Thread safety: Status and Result are plain values; distinct objects may be used concurrently.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace affinity {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from a caller (a field, a row, a flag)
  kNotFound,            // an id, file or key that does not exist
  kAlreadyExists,       // a create that collides with existing data
  kFailedPrecondition,  // the system is not in a state that allows the call
  kIOError,             // the filesystem or RocksDB failed
  kCorruption,          // stored data does not decode
  kInternal,            // a bug: an invariant did not hold
  kUnimplemented,       // a feature that this build does not provide
};

// Returns the stable lower-case name of `code` ("invalid_argument", ...).
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string msg, std::string field = {}) {
    return {StatusCode::kInvalidArgument, std::move(msg), std::move(field)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) {
    return {StatusCode::kAlreadyExists, std::move(msg)};
  }
  static Status FailedPrecondition(std::string msg) {
    return {StatusCode::kFailedPrecondition, std::move(msg)};
  }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The input field the error is about ("time", "customer", a flag name), or empty.
  const std::string& field() const { return field_; }

  // "invalid_argument: message (field: time)"; "ok" for OK.
  std::string ToString() const;

  // Returns a copy whose message is `prefix + ": " + message()`; OK stays OK.
  Status WithContext(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

// Either a T or a non-OK Status. Access to value() on an error is a programmer error (asserts).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok() && "Result constructed from an OK status without a value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace affinity

#define AFFINITY_CONCAT_INNER_(a, b) a##b
#define AFFINITY_CONCAT_(a, b) AFFINITY_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define AFFINITY_RETURN_IF_ERROR(expr)           \
  do {                                           \
    ::affinity::Status _affinity_st = (expr);    \
    if (!_affinity_st.ok()) return _affinity_st; \
  } while (0)

// `AFFINITY_ASSIGN_OR_RETURN(auto x, Call());` binds the value or returns the error.
#define AFFINITY_ASSIGN_OR_RETURN(lhs, expr) \
  AFFINITY_ASSIGN_OR_RETURN_IMPL_(AFFINITY_CONCAT_(_affinity_res_, __LINE__), lhs, expr)
#define AFFINITY_ASSIGN_OR_RETURN_IMPL_(res, lhs, expr) \
  auto res = (expr);                                    \
  if (!res.ok()) return res.status();                   \
  lhs = std::move(res).value()
