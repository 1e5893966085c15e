// log.h: leveled logging with a host-replaceable sink.
//
// Lines are "LEVEL component: message". The default sink writes to stderr; a host installs its
// own with set_log_sink (the C ABI exposes it). Never pass a token, secret, key or request body
// to a log call: take SecretString, which cannot be formatted, and log ids and sizes instead.
#pragma once

#include <functional>
#include <sstream>
#include <string>
#include <string_view>

namespace fb::detail {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

const char* log_level_name(LogLevel level);
// Parses "debug", "info", "warn", "error", "off"; false when unknown.
bool parse_log_level(std::string_view text, LogLevel* out);

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
