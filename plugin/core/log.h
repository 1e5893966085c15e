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

#include <cstdint>
#include <functional>
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
