#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

namespace fb::detail {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_sink_mu;
std::shared_ptr<LogSink> g_sink;  // guarded by g_sink_mu; null means stderr
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
thread_local LogContext t_context;

// RFC 3339, UTC, milliseconds: "2026-12-05T13:40:42.123Z".
std::string rfc3339_ms(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

// "warn" for kWarn: the names in JSON lines are the ones log_level accepts.
std::string lower_level_name(LogLevel level) {
  std::string name = log_level_name(level);
  for (char& c : name) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return name;
}

}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
    case LogLevel::kOff: return "OFF";
  }
  return "?";
}

bool parse_log_level(std::string_view text, LogLevel* out) {
  static constexpr std::pair<std::string_view, LogLevel> kNames[] = {
      {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn},
      {"error", LogLevel::kError}, {"off", LogLevel::kOff}};
  for (const auto& [name, level] : kNames) {
    if (text == name) {
      *out = level;
      return true;
    }
  }
  return false;
}

bool parse_log_format(std::string_view text, LogFormat* out) {
  if (text == "text") *out = LogFormat::kText;
  else if (text == "json") *out = LogFormat::kJson;
  else return false;
  return true;
}
void set_log_format(LogFormat format) { g_format = static_cast<int>(format); }
LogFormat log_format() { return static_cast<LogFormat>(g_format.load()); }

LogScope::LogScope(int64_t integration_id, std::string tenant_id) : saved_(t_context) {
  if (integration_id != 0) t_context.integration_id = integration_id;
  if (!tenant_id.empty()) t_context.tenant_id = std::move(tenant_id);
}
LogScope::~LogScope() { t_context = std::move(saved_); }
const LogContext& log_context() { return t_context; }

std::string format_log_line(LogFormat format, int64_t unix_ms, LogLevel level, std::string_view component,
                            std::string_view message, const LogContext& context) {
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json j = {{"ts", rfc3339_ms(unix_ms)},
                                {"level", lower_level_name(level)},
                                {"component", component},
                                {"message", message}};
    if (context.integration_id != 0) j["integration_id"] = context.integration_id;
    if (!context.tenant_id.empty()) j["tenant_id"] = context.tenant_id;
    // Invalid UTF-8 in a message becomes U+FFFD instead of an exception or a broken line.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  std::string line = rfc3339_ms(unix_ms);
  line += ' ';
  line += log_level_name(level);
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  if (context.integration_id != 0) line += " integration=" + std::to_string(context.integration_id);
  if (!context.tenant_id.empty()) line += " tenant=" + context.tenant_id;
  line += '\n';
  return line;
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void set_log_sink(LogSink sink) {
  std::lock_guard lock(g_sink_mu);
  g_sink = sink ? std::make_shared<LogSink>(std::move(sink)) : nullptr;
}

void log_write(LogLevel level, std::string_view component, std::string_view message) {
  std::shared_ptr<LogSink> sink;
  {
    std::lock_guard lock(g_sink_mu);
    sink = g_sink;
  }
  if (sink) {
    (*sink)(level, component, message);
    return;
  }
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line = format_log_line(log_format(), now_ms, level, component, message, t_context);
  // One write per line, so lines of several threads never interleave.
  std::fflush(stderr);
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace fb::detail
