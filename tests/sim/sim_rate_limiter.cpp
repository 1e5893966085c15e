#include "sim/sim_rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace fb::sim {
namespace {

int64_t ceil_seconds(int64_t ms) { return std::max<int64_t>(1, (ms + 999) / 1000); }

}  // namespace

RateDecision RateLimiter::hit(const std::string& key, int64_t limit, double window_s, bool sliding, int64_t now_ms) {
  auto window_ms = static_cast<int64_t>(std::llround(window_s * 1000.0));
  Window& w = windows_[key];
  RateDecision d;
  d.limit = limit;
  if (sliding) {
    while (!w.stamps.empty() && w.stamps.front() + window_ms <= now_ms) w.stamps.pop_front();
    d.allowed = static_cast<int64_t>(w.stamps.size()) < limit;
    if (d.allowed) w.stamps.push_back(now_ms);
    d.remaining = std::max<int64_t>(0, limit - static_cast<int64_t>(w.stamps.size()));
    d.reset_s = w.stamps.empty() ? 0 : ceil_seconds(w.stamps.front() + window_ms - now_ms);
    return d;
  }
  if (w.count == 0 || now_ms >= w.start_ms + window_ms) {
    w.start_ms = now_ms;
    w.count = 0;
  }
  d.allowed = w.count < limit;
  if (d.allowed) ++w.count;
  d.remaining = std::max<int64_t>(0, limit - w.count);
  d.reset_s = ceil_seconds(w.start_ms + window_ms - now_ms);
  return d;
}

}  // namespace fb::sim
