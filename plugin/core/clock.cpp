#include "core/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

namespace fb::detail {

int64_t SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t SystemClock::mono_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void SystemClock::sleep_ms(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

std::string format_iso8601(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// The digits at text[at, at + n) as a number, or -1 when one of them is not a digit.
int fixed_digits(const std::string& text, size_t at, size_t n) {
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

}  // namespace

bool parse_iso8601(const std::string& text, int64_t* unix_s) {
  int y, mo, d, h, mi, s;
  int consumed = 0;
  // "YYYY-MM-DDTHH:MM:SS" exactly, as Fathom sends every time, read directly (the worker parses
  // five per meeting); any other shape goes through sscanf, which also accepts shorter fields.
  if (text.size() >= 19 && text[4] == '-' && text[7] == '-' && text[10] == 'T' && text[13] == ':' &&
      text[16] == ':' && (y = fixed_digits(text, 0, 4)) >= 0 && (mo = fixed_digits(text, 5, 2)) >= 0 &&
      (d = fixed_digits(text, 8, 2)) >= 0 && (h = fixed_digits(text, 11, 2)) >= 0 &&
      (mi = fixed_digits(text, 14, 2)) >= 0 && (s = fixed_digits(text, 17, 2)) >= 0) {
    consumed = 19;
  } else if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return false;
  size_t i = static_cast<size_t>(consumed);
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  }
  int64_t offset = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    ++i;
  } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(text.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) return false;
    offset = (oh * 3600 + om * 60) * (text[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return false;
  }
  if (i != text.size()) return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  *unix_s = static_cast<int64_t>(timegm(&tm)) - offset;
  return true;
}

}  // namespace fb::detail
