#include "fathom/rate_limiter.h"

#include <algorithm>
#include <cstdlib>

#include "core/log.h"
#include "crypto/encoding.h"

namespace fb::detail {
namespace {

// A non-negative integer header value; false when absent or not a plain number.
bool header_int(const HttpResponse& r, std::string_view name, int64_t* out) {
  std::string v(trim_ows(r.header(name)));
  if (v.empty() || v.size() > 12 || !std::all_of(v.begin(), v.end(), ::isdigit)) return false;
  *out = std::strtoll(v.c_str(), nullptr, 10);
  return true;
}

}  // namespace

RateLimitOptions RateLimitOptions::from_config(const Config& config) {
  RateLimitOptions o;
  o.limit = config.sync.rate_limit_per_minute;
  o.window_ms = 60'000;
  return o;
}

RateLimiter::RateLimiter(Clock& clock, RateLimitOptions options)
    : clock_(clock), options_(options), limit_(std::max(1, options.limit)) {}

int64_t RateLimiter::wait_locked(int64_t now) const {
  int64_t until = now;
  if (blocked_until_ > until) until = blocked_until_;
  if (server_view_ && now < server_reset_at_) {
    // The server's own count is authoritative for its current window.
    if (server_remaining_ <= 0) until = std::max(until, server_reset_at_);
  } else if (static_cast<int>(sent_.size()) >= limit_) {
    until = std::max(until, sent_[sent_.size() - static_cast<size_t>(limit_)] + options_.window_ms);
  }
  return until - now;
}

int64_t RateLimiter::wait_ms() const {
  std::lock_guard lock(mu_);
  return std::max<int64_t>(0, wait_locked(clock_.mono_ms()));
}

Status RateLimiter::acquire(const std::function<bool()>& cancelled) {
  bool counted_wait = false;
  for (;;) {
    int64_t wait = 0;
    {
      std::lock_guard lock(mu_);
      int64_t now = clock_.mono_ms();
      while (!sent_.empty() && sent_.front() + options_.window_ms <= now) sent_.pop_front();
      if (server_view_ && now >= server_reset_at_) {
        // The server's window is over and its budget is whole again; the local log of the old
        // window would only hold calls back (Fathom's windows may be fixed, not sliding).
        server_view_ = false;
        sent_.clear();
      }
      wait = wait_locked(now);
      if (wait <= 0) {
        sent_.push_back(now);
        if (server_view_) --server_remaining_;
        ++inflight_;
        ++calls_;
        return Status::Ok();
      }
      if (options_.max_wait_ms > 0 && wait > options_.max_wait_ms) {
        return Status::RateLimited("Fathom rate limit: the next call is allowed in " + std::to_string(wait / 1000) +
                                   " s, longer than the allowed wait");
      }
      if (!counted_wait) {
        ++waits_;
        counted_wait = true;
      }
    }
    if (cancelled && cancelled()) return Status::Cancelled("cancelled while waiting for the Fathom rate limit");
    int64_t slice = options_.wait_slice_ms > 0 ? std::min(wait, options_.wait_slice_ms) : wait;
    clock_.sleep_ms(slice);
    {
      std::lock_guard lock(mu_);
      waited_ms_ += slice;
    }
    if (cancelled && cancelled()) return Status::Cancelled("cancelled while waiting for the Fathom rate limit");
  }
}

void RateLimiter::on_response(const HttpResponse& response) {
  std::lock_guard lock(mu_);
  if (inflight_ > 0) --inflight_;
  int64_t now = clock_.mono_ms();
  int64_t limit = 0, remaining = 0, reset_s = 0;
  bool has_limit = header_int(response, "RateLimit-Limit", &limit) && limit > 0;
  bool has_remaining = header_int(response, "RateLimit-Remaining", &remaining);
  bool has_reset = header_int(response, "RateLimit-Reset", &reset_s);
  if (has_limit) limit_ = static_cast<int>(std::min<int64_t>(limit, 1'000'000));
  if (has_remaining && has_reset) {
    server_view_ = true;
    // Calls reserved after this one was sent are not in the server's count yet.
    server_remaining_ = remaining - inflight_;
    server_reset_at_ = now + reset_s * 1000 + options_.reset_margin_ms;
  }
  if (response.status == 429) {
    ++rate_limited_;
    int64_t wait_ms = options_.window_ms;
    int64_t retry_after_ms = parse_retry_after_ms(response.header("Retry-After"), clock_.now_ms());
    if (retry_after_ms >= 0) wait_ms = retry_after_ms + options_.reset_margin_ms;
    else if (has_reset) wait_ms = reset_s * 1000 + options_.reset_margin_ms;
    blocked_until_ = std::max(blocked_until_, now + wait_ms);
    server_view_ = true;
    server_remaining_ = 0;
    server_reset_at_ = blocked_until_;  // Retry-After, when sent, overrides the announced reset
    FB_LOG(kInfo, "fathom") << "rate limited (429): holding calls of this account for " << wait_ms << " ms";
  }
}

void RateLimiter::on_no_response() {
  std::lock_guard lock(mu_);
  if (inflight_ > 0) --inflight_;
}

RateLimitSnapshot RateLimiter::snapshot() const {
  std::lock_guard lock(mu_);
  RateLimitSnapshot s;
  s.limit = limit_;
  s.blocked_until_ms = blocked_until_;
  s.server_view = server_view_ && clock_.mono_ms() < server_reset_at_;
  s.server_remaining = server_remaining_;
  s.server_reset_at_ms = server_reset_at_;
  s.calls = calls_;
  s.waits = waits_;
  s.waited_ms = waited_ms_;
  s.rate_limited = rate_limited_;
  s.window_ms = options_.window_ms;
  const int64_t now = clock_.mono_ms();
  if (s.server_view) {
    s.remaining = std::max<int64_t>(0, server_remaining_);
  } else {
    int64_t in_window = 0;
    for (int64_t t : sent_) in_window += t + options_.window_ms > now ? 1 : 0;
    s.remaining = std::max<int64_t>(0, limit_ - in_window);
  }
  if (blocked_until_ > now) s.remaining = 0;
  return s;
}

RateLimiterRegistry::RateLimiterRegistry(Clock& clock, RateLimitOptions defaults)
    : clock_(clock), defaults_(defaults) {}

RateLimiter& RateLimiterRegistry::for_account(int64_t integration_id) {
  std::lock_guard lock(mu_);
  auto& slot = limiters_[integration_id];
  if (!slot) slot = std::make_unique<RateLimiter>(clock_, defaults_);
  return *slot;
}

}  // namespace fb::detail
