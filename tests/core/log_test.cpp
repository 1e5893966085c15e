// Log lines: RFC 3339 UTC timestamps with milliseconds, the text and JSON formats, the thread's
// integration/tenant context, and what the stderr sink really writes.
#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "core/log.h"

namespace {

using fb::detail::LogContext;
using fb::detail::LogFormat;
using fb::detail::LogLevel;

// Runs fn with stderr redirected to a pipe and returns what was written.
template <typename F>
std::string capture_stderr(F&& fn) {
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fds[1], STDERR_FILENO);
  ::close(fds[1]);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  return out;
}

// Restores the process-wide format after a test.
struct FormatGuard {
  ~FormatGuard() { fb::detail::set_log_format(LogFormat::kText); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(log_lines)

BOOST_AUTO_TEST_CASE(text_lines_start_with_an_rfc3339_utc_millisecond_timestamp) {
  // 2023-11-14T22:13:20.042Z is 1700000000042 ms after the epoch.
  std::string line = fb::detail::format_log_line(LogFormat::kText, 1'700'000'000'042, LogLevel::kWarn, "sync",
                                                 "page 3 failed", LogContext{});
  BOOST_TEST(line == "2023-11-14T22:13:20.042Z WARN sync: page 3 failed\n");
  std::string scoped = fb::detail::format_log_line(LogFormat::kText, 5, LogLevel::kInfo, "webhooks", "done",
                                                   LogContext{7, "acme"});
  BOOST_TEST(scoped == "1970-01-01T00:00:00.005Z INFO webhooks: done integration=7 tenant=acme\n");
}

BOOST_AUTO_TEST_CASE(json_lines_are_one_object_with_the_context_ids) {
  std::string line = fb::detail::format_log_line(LogFormat::kJson, 1'700'000'000'999, LogLevel::kError, "oauth",
                                                 "refresh \"failed\"\nnext line \xff", LogContext{42, "t-1"});
  BOOST_TEST(line.back() == '\n');
  BOOST_TEST(line.find('\n') == line.size() - 1);  // one line even when the message has a newline
  auto j = nlohmann::json::parse(line);
  BOOST_TEST(j["ts"] == "2023-11-14T22:13:20.999Z");
  BOOST_TEST(j["level"] == "error");
  BOOST_TEST(j["component"] == "oauth");
  BOOST_TEST(j["message"] == "refresh \"failed\"\nnext line \xef\xbf\xbd");  // bad UTF-8 replaced
  BOOST_TEST(j["integration_id"] == 42);
  BOOST_TEST(j["tenant_id"] == "t-1");
  auto bare = nlohmann::json::parse(
      fb::detail::format_log_line(LogFormat::kJson, 0, LogLevel::kInfo, "x", "y", LogContext{}));
  BOOST_TEST(!bare.contains("integration_id"));
  BOOST_TEST(!bare.contains("tenant_id"));
}

BOOST_AUTO_TEST_CASE(scopes_nest_per_thread_and_restore) {
  {
    fb::detail::LogScope outer(3, "acme");
    {
      fb::detail::LogScope inner(9);
      BOOST_TEST(fb::detail::log_context().integration_id == 9);
      BOOST_TEST(fb::detail::log_context().tenant_id == "acme");  // kept from the outer scope
      std::thread([] { BOOST_TEST(fb::detail::log_context().integration_id == 0); }).join();
    }
    BOOST_TEST(fb::detail::log_context().integration_id == 3);
  }
  BOOST_TEST(fb::detail::log_context().integration_id == 0);
  BOOST_TEST(fb::detail::log_context().tenant_id.empty());
}

BOOST_AUTO_TEST_CASE(the_stderr_sink_writes_the_configured_format) {
  FormatGuard guard;
  std::string text = capture_stderr([] {
    fb::detail::LogScope scope(5, "acme");
    FB_LOG(kWarn, "test") << "value " << 12;
  });
  BOOST_TEST_INFO(text);
  BOOST_TEST(std::regex_match(text, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN test: value 12 integration=5 tenant=acme\n)")));

  LogFormat format;
  BOOST_TEST(fb::detail::parse_log_format("json", &format));
  BOOST_TEST(!fb::detail::parse_log_format("yaml", &format));
  fb::detail::set_log_format(LogFormat::kJson);
  std::string json = capture_stderr([] { FB_LOG(kWarn, "test") << "as json"; });
  BOOST_TEST_INFO(json);
  auto j = nlohmann::json::parse(json);
  BOOST_TEST(j["message"] == "as json");
  BOOST_TEST(j["level"] == "warn");
  BOOST_TEST(std::regex_match(j["ts"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}

// A failure that repeats is written once an interval; one with a new cause is written at once
// (the PostgreSQL chaos test's locked table, then read-only database: the second reason was
// hidden for a minute behind the first), at most kCauses of them an interval.
BOOST_AUTO_TEST_CASE(a_throttled_failure_with_a_new_cause_is_written_at_once) {
  fb::detail::LogThrottle t(60'000);
  int64_t more = -1;
  BOOST_TEST(t.admit(0, &more, "table locked"));
  BOOST_TEST(more == 0);
  BOOST_TEST(!t.admit(10, &more, "table locked"));
  BOOST_TEST(!t.admit(20, &more, "table locked"));
  BOOST_TEST(t.admit(30, &more, "read-only transaction"));
  BOOST_TEST(more == 2);  // the two repeats left out before it
  BOOST_TEST(!t.admit(40, &more, "read-only transaction"));
  BOOST_TEST(!t.admit(50, &more, "table locked"));
  BOOST_TEST(t.admit(60, &more, "server stopped"));
  BOOST_TEST(t.admit(70, &more, "connection refused"));
  BOOST_TEST(!t.admit(80, &more, "yet another reason"));  // four causes this interval already
  BOOST_TEST(t.admit(60'000, &more, "table locked"));      // the next interval
  BOOST_TEST(more == 1);  // the one over the cap
  BOOST_TEST(t.end_run() == 10);
  BOOST_TEST(t.admit(60'010, &more, "table locked"));  // a new run: written at once
  BOOST_TEST(more == 0);
}

BOOST_AUTO_TEST_SUITE_END()
