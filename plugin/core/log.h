// log.h: leveled logging with a host-replaceable sink.
//
// The default sink writes one line per call to stderr, in one of two formats (set_log_format):
//   text: "2026-12-05T13:40:42.123Z INFO component: message integration=7 tenant=acme"
//   json: {"ts":"2026-12-05T13:40:42.123Z","level":"info","component":"...","message":"...",
//          "integration_id":7,"tenant_id":"acme"}
// The time is RFC 3339 in UTC with milliseconds. The ids come from the calling thread's LogScope
// (absent when no scope is open). A host installs its own sink with set_log_sink (the C ABI
// exposes it); the sink gets the parts, unformatted. Never pass a token, secret, key or request
// body to a log call: take SecretString, which cannot be formatted, and log ids and sizes instead.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

namespace fb::detail {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

const char* log_level_name(LogLevel level);
// Parses "debug", "info", "warn", "error", "off"; false when unknown.
bool parse_log_level(std::string_view text, LogLevel* out);

enum class LogFormat : int { kText = 0, kJson = 1 };
// Parses "text" or "json"; false when unknown.
bool parse_log_format(std::string_view text, LogFormat* out);
void set_log_format(LogFormat format);
LogFormat log_format();

// What the calling thread is working for, added to its log lines while a LogScope is open.
struct LogContext {
  int64_t integration_id = 0;  // 0: unknown
  std::string tenant_id;       // empty: unknown
};
// Sets the calling thread's context for its lifetime and restores the previous one after. A field
// left empty (0, "") keeps the enclosing scope's value. Not copyable; use on one thread.
class LogScope {
 public:
  explicit LogScope(int64_t integration_id, std::string tenant_id = {});
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogContext saved_;
};
// The calling thread's context.
const LogContext& log_context();

// One line as the stderr sink writes it, with its '\n' (for tests and for hosts that want the
// same format in their own sink).
std::string format_log_line(LogFormat format, int64_t unix_ms, LogLevel level, std::string_view component,
                            std::string_view message, const LogContext& context);

using LogSink = std::function<void(LogLevel, std::string_view component, std::string_view message)>;

// Process-wide settings. Thread-safe.
void set_log_level(LogLevel level);
LogLevel log_level();
// Replaces the sink; an empty function restores the stderr sink.
void set_log_sink(LogSink sink);
bool log_enabled(LogLevel level);
void log_write(LogLevel level, std::string_view component, std::string_view message);

}  // namespace fb::detail

// FB_LOG(kInfo, "oauth") << "connected integration " << id;  (the stream is skipped when disabled)
// One expression, so it is safe after a bare `if` without braces.
#define FB_LOG(level, component)                                                \
  !::fb::detail::log_enabled(::fb::detail::LogLevel::level)                     \
      ? (void)0                                                                 \
      : ::fb::detail::LogVoidify() & ::fb::detail::LogLine(::fb::detail::LogLevel::level, component).stream()

namespace fb::detail {
class LogLine {
 public:
  LogLine(LogLevel level, std::string_view component) : level_(level), component_(component) {}
  ~LogLine() { log_write(level_, component_, os_.str()); }
  std::ostringstream& stream() { return os_; }

 private:
  LogLevel level_;
  std::string_view component_;
  std::ostringstream os_;
};
// Turns the stream expression into void so both arms of FB_LOG's ?: have one type.
struct LogVoidify {
  void operator&(std::ostream&) {}
};
}  // namespace fb::detail

namespace fb::detail {
// Aggregates a line that would repeat once per request while something stays broken (the store
// down, every delivery failing the same way): the first occurrence is written, then at most one
// per interval, which says how many were left out since the last one written.
//   if (int64_t more; throttle.admit(clock.mono_ms(), &more)) FB_LOG(kError, "x") << "... " << more;
// end_run() closes a run of failures (the thing works again): it returns how many occurred since
// the run began (0 when none) and lets the next failure be written at once. Thread-safe; admit()
// without a cause is lock-free (under a race one extra line may be written or one count shifted to
// the next line), admit() with a cause takes a lock.
class LogThrottle {
 public:
  LogThrottle() : LogThrottle(1000) {}
  explicit LogThrottle(int64_t interval_ms) : interval_ms_(interval_ms) {}
  // Counts one occurrence at now_ms (monotonic). True when it is to be written; *left_out then
  // holds how many occurrences were not written since the previous line.
  bool admit(int64_t now_ms, int64_t* left_out) {
    run_.fetch_add(1, std::memory_order_relaxed);
    int64_t last = last_ms_.load(std::memory_order_relaxed);
    if ((last == kNever || now_ms - last >= interval_ms_) && last_ms_.compare_exchange_strong(last, now_ms)) {
      *left_out = left_out_.exchange(0);
      return true;
    }
    left_out_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // As admit(now_ms, left_out), for a line that names its cause: a cause not yet written in the
  // current interval is written at once (up to kCauses distinct ones an interval), since a new
  // reason is news to whoever reads the log (a locked table, then a read-only database); the same
  // cause again waits for the interval like any repeat. Takes a lock: for failure paths only.
  bool admit(int64_t now_ms, int64_t* left_out, std::string_view cause) {
    const size_t h = std::hash<std::string_view>{}(cause);
    std::lock_guard lk(causes_mu_);
    run_.fetch_add(1, std::memory_order_relaxed);
    const int64_t last = last_ms_.load(std::memory_order_relaxed);
    const bool new_interval = last == kNever || now_ms - last >= interval_ms_;
    if (new_interval) n_causes_ = 0;
    const auto written = causes_.begin() + static_cast<std::ptrdiff_t>(n_causes_);
    const bool seen = std::find(causes_.begin(), written, h) != written;
    if (new_interval || (!seen && n_causes_ < kCauses)) {
      if (new_interval) last_ms_.store(now_ms);
      if (!seen) causes_[n_causes_++] = h;
      *left_out = left_out_.exchange(0);
      return true;
    }
    left_out_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  int64_t end_run() {
    if (run_.load(std::memory_order_relaxed) == 0) return 0;  // the common case: nothing to close
    last_ms_.store(kNever);
    left_out_.store(0);
    return run_.exchange(0);
  }

  // The end of a throttled line: "; N more since the last report", or nothing when none was left out.
  static std::string left_out_note(int64_t left_out) {
    return left_out ? "; " + std::to_string(left_out) + " more since the last report" : std::string();
  }

  static constexpr size_t kCauses = 4;

 private:
  static constexpr int64_t kNever = INT64_MIN;
  const int64_t interval_ms_;
  std::atomic<int64_t> last_ms_{kNever};
  std::atomic<int64_t> left_out_{0};
  std::atomic<int64_t> run_{0};
  std::mutex causes_mu_;                // admit() with a cause
  std::array<size_t, kCauses> causes_{};  // hashes of the causes written in the current interval
  size_t n_causes_ = 0;
};
}  // namespace fb::detail
