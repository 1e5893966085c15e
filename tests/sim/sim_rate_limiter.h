// sim_rate_limiter.h: per-key request budgets, fixed or sliding window (fathom-api.md 2, 7.9).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

namespace fb::sim {

struct RateDecision {
  bool allowed = true;
  int64_t limit = 0;
  int64_t remaining = 0;
  int64_t reset_s = 0;  // whole seconds until the budget frees up (rounded up, >= 1 once used)
};

// Not thread-safe: the simulator calls it under its state mutex.
class RateLimiter {
 public:
  // Counts one request for `key` at monotonic time now_ms when the budget allows it.
  RateDecision hit(const std::string& key, int64_t limit, double window_s, bool sliding, int64_t now_ms);
  void reset() { windows_.clear(); }

 private:
  struct Window {
    int64_t start_ms = 0;
    int64_t count = 0;
    std::deque<int64_t> stamps;  // sliding mode: times of the requests inside the window
  };
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace fb::sim
