// status.h: the error model of the C++ API.
//
// Every fallible operation returns a Status or a Result<T>. No exception crosses the public API.
// An expected failure (Fathom said 429, the refresh token is dead, the state expired) is a value
// with a Code and a message; the message never contains a token, a secret or a request body.
// Codes are numbered forever and only appended; the C ABI maps them one to one (fb_code).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace fb {

enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,     // caller passed something malformed; the message names it
  kNotFound = 2,            // no such integration, meeting, event, script...
  kAlreadyExists = 3,
  kPermissionDenied = 4,    // tenant/user may not act on this object
  kUnauthenticated = 5,     // Fathom rejected the credential (401)
  kFailedPrecondition = 6,  // object is in the wrong state for this operation
  kUnavailable = 7,         // network error, 5xx: retryable
  kRateLimited = 8,         // 429 or local limiter
  kTimeout = 9,
  kInternal = 10,
  kReconnectRequired = 11,  // the grant is dead: the user must connect again
  kInvalidGrant = 12,       // token endpoint said invalid_grant
  kIo = 13,                 // file or database I/O failure
  kConfig = 14,             // a setting is missing or malformed; the message names it
  kScript = 15,             // a Lua script failed; the message has file:line and context
  kConflict = 16,           // lost a compare-and-swap or a concurrent operation is running
  kTooLarge = 17,
  kMalformed = 18,          // a document (JSON, header) could not be parsed
  kRejected = 19,           // a webhook delivery failed verification
  kCancelled = 20,
};

// The static name of a code ("ok", "invalid_argument", ...); never null.
const char* code_name(Code c) noexcept;

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status RateLimited(std::string m) { return {Code::kRateLimited, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status ReconnectRequired(std::string m) { return {Code::kReconnectRequired, std::move(m)}; }
  static Status InvalidGrant(std::string m) { return {Code::kInvalidGrant, std::move(m)}; }
  static Status Io(std::string m) { return {Code::kIo, std::move(m)}; }
  static Status Config(std::string m) { return {Code::kConfig, std::move(m)}; }
  static Status Script(std::string m) { return {Code::kScript, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status Malformed(std::string m) { return {Code::kMalformed, std::move(m)}; }
  static Status Rejected(std::string m) { return {Code::kRejected, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }

  bool ok() const noexcept { return code_ == Code::kOk; }
  Code code() const noexcept { return code_; }
  bool is(Code c) const noexcept { return code_ == c; }
  const std::string& message() const noexcept { return message_; }
  // "code_name: message", or "ok".
  std::string to_string() const;
  // A copy with "context: " put before the message; the code is kept.
  Status with_context(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none. Never holds an ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                      // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { fix_ok(); }    // NOLINT: implicit by design
  Result(Code code, std::string msg) : v_(Status(code, std::move(msg))) { fix_ok(); }

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  // REQUIRES: ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // Ok when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<1>(v_); }
  Code code() const noexcept { return ok() ? Code::kOk : std::get<1>(v_).code(); }
  T value_or(T fallback) const { return ok() ? std::get<0>(v_) : std::move(fallback); }

 private:
  void fix_ok() {
    if (v_.index() == 1 && std::get<1>(v_).ok()) v_ = Status::Internal("Result built from an ok Status");
  }
  std::variant<T, Status> v_;
};

// Printing for logs and test frameworks: "invalid_grant" / "invalid_grant: message".
std::ostream& operator<<(std::ostream& os, Code c);
std::ostream& operator<<(std::ostream& os, const Status& s);

}  // namespace fb

// Early-return helpers for Status and Result. FB_TRY(expr) returns the Status of a failed expr;
// FB_ASSIGN(lhs, expr) declares/assigns from a Result or returns its Status.
#define FB_CONCAT_INNER(a, b) a##b
#define FB_CONCAT(a, b) FB_CONCAT_INNER(a, b)
#define FB_TRY(expr)                          \
  do {                                        \
    ::fb::Status fb_try_status_ = (expr);     \
    if (!fb_try_status_.ok()) return fb_try_status_; \
  } while (0)
#define FB_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                   \
  if (!tmp.ok()) return tmp.status();  \
  lhs = std::move(tmp).value()
#define FB_ASSIGN(lhs, expr) FB_ASSIGN_IMPL(FB_CONCAT(fb_assign_tmp_, __LINE__), lhs, expr)
