// rate_limiter.h: Fathom's per-account API budget (60 calls per 60 s, fathom-api.md section 2),
// shared by every caller in the process: sync, scripts, webhook follow-ups.
//
// A RateLimiter starts from a local budget (a sliding log of `limit` calls per `window_ms`). Once
// the server answers with RateLimit-Remaining / RateLimit-Reset (seconds), those headers are
// authoritative until the reset they announce. A 429 blocks every caller of the account until
// Retry-After (seconds) has passed, else RateLimit-Reset, else one whole window: nobody retries
// into the limit. Waiting goes through the Clock seam (a FakeClock advances instead of blocking).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "core/clock.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "http/http_client.h"

namespace fb::detail {

struct RateLimitOptions {
  int limit = 60;              // calls per window until the server says otherwise (sync.rate_limit_per_minute)
  int64_t window_ms = 60'000;  // the documented window
  // An acquire() that would have to wait longer than this in one go fails with kRateLimited
  // instead (0: no bound).
  int64_t max_wait_ms = 0;
  // Added to a server-announced reset (its unit is whole seconds, so it may be rounded down).
  int64_t reset_margin_ms = 250;
  // Waits are sliced so a cancel flag is noticed within this long.
  int64_t wait_slice_ms = 200;
  // limit = sync.rate_limit_per_minute over a 60 s window.
  static RateLimitOptions from_config(const Config& config);
};

struct RateLimitSnapshot {
  int limit = 0;
  int64_t blocked_until_ms = 0;    // mono ms; 0 = not blocked by a 429
  bool server_view = false;        // headers received and their window not yet over
  int64_t server_remaining = 0;    // as last reported, minus calls sent since
  int64_t server_reset_at_ms = 0;  // mono ms
  int64_t calls = 0;               // calls let through (lifetime)
  int64_t waits = 0;               // acquire() calls that had to wait
  int64_t waited_ms = 0;           // total time spent waiting
  int64_t rate_limited = 0;        // 429 responses seen
  int64_t remaining = 0;           // calls that may go now in the current window (the API budget left)
  int64_t window_ms = 0;           // the window the limit counts over
};

// Thread-safe. Each acquire() must be followed by exactly one on_response() or on_no_response().
class RateLimiter {
 public:
  RateLimiter(Clock& clock, RateLimitOptions options);

  // Blocks until one call may be sent now, and reserves it. Fails with kCancelled when
  // cancelled() turns true while waiting, or kRateLimited when the wait would exceed max_wait_ms.
  Status acquire(const std::function<bool()>& cancelled = {});
  // Feeds back the answer to a reserved call: RateLimit-* headers, and 429 + Retry-After.
  void on_response(const HttpResponse& response);
  // The reserved call got no answer (network error): nothing to learn.
  void on_no_response();

  // How long a call made now would have to wait (0: it may go now). Does not reserve.
  int64_t wait_ms() const;
  RateLimitSnapshot snapshot() const;

 private:
  int64_t wait_locked(int64_t now) const;

  Clock& clock_;
  const RateLimitOptions options_;
  mutable std::mutex mu_;
  int limit_;                      // guarded by mu_ (RateLimit-Limit may change it)
  std::deque<int64_t> sent_;       // mono ms of calls within the last window; guarded by mu_
  int64_t blocked_until_ = 0;      // guarded by mu_
  bool server_view_ = false;       // guarded by mu_
  int64_t server_remaining_ = 0;   // guarded by mu_
  int64_t server_reset_at_ = 0;    // guarded by mu_
  int inflight_ = 0;               // guarded by mu_
  int64_t calls_ = 0, waits_ = 0, waited_ms_ = 0, rate_limited_ = 0;  // guarded by mu_
};

// One RateLimiter per Fathom account (integration id), created on first use and kept for the
// registry's lifetime. Thread-safe; returned references stay valid while the registry lives.
class RateLimiterRegistry {
 public:
  explicit RateLimiterRegistry(Clock& clock, RateLimitOptions defaults = {});
  RateLimiter& for_account(int64_t integration_id);
  const RateLimitOptions& defaults() const { return defaults_; }

 private:
  Clock& clock_;
  const RateLimitOptions defaults_;
  std::mutex mu_;
  std::map<int64_t, std::unique_ptr<RateLimiter>> limiters_;  // guarded by mu_
};

}  // namespace fb::detail
