// RateLimiter on a FakeClock: the local budget, adapting to RateLimit-* headers, and 429 waits.
#include <boost/test/unit_test.hpp>

#include "core/clock.h"
#include "fathom/rate_limiter.h"

using namespace fb;
using namespace fb::detail;

namespace {

HttpResponse answer(int status, Headers headers) {
  HttpResponse r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

RateLimitOptions opts(int limit, int64_t window_ms) {
  RateLimitOptions o;
  o.limit = limit;
  o.window_ms = window_ms;
  o.reset_margin_ms = 0;
  return o;
}

// Time spent in one acquire() (the fake clock advances instead of sleeping).
int64_t timed_acquire(RateLimiter& l, FakeClock& clock) {
  int64_t t0 = clock.mono_ms();
  BOOST_REQUIRE(l.acquire().ok());
  return clock.mono_ms() - t0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(local_budget_is_a_sliding_window) {
  FakeClock clock;
  RateLimiter l(clock, opts(3, 1000));
  for (int i = 0; i < 3; ++i) {
    BOOST_TEST(timed_acquire(l, clock) == 0);
    l.on_response(answer(200, {}));
    clock.advance_ms(100);
  }
  // The 4th call waits until the first one leaves the window (t=1000; now t=300).
  BOOST_TEST(timed_acquire(l, clock) == 700);
  l.on_response(answer(200, {}));
  BOOST_TEST(l.snapshot().waits == 1);
}

BOOST_AUTO_TEST_CASE(server_headers_are_authoritative_until_their_reset) {
  FakeClock clock;
  RateLimiter l(clock, opts(60, 60000));
  BOOST_TEST(timed_acquire(l, clock) == 0);
  l.on_response(answer(200, {{"RateLimit-Limit", "60"}, {"ratelimit-remaining", "1"}, {"RateLimit-Reset", "5"}}));
  BOOST_TEST(timed_acquire(l, clock) == 0);  // the one left
  l.on_response(answer(200, {{"RateLimit-Limit", "60"}, {"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "5"}}));
  BOOST_TEST(l.wait_ms() == 5000);
  BOOST_TEST(timed_acquire(l, clock) == 5000);
  // A new window: the local log of the old one does not hold calls back.
  l.on_response(answer(200, {{"RateLimit-Limit", "60"}, {"RateLimit-Remaining", "59"}, {"RateLimit-Reset", "60"}}));
  for (int i = 0; i < 59; ++i) {
    BOOST_TEST(timed_acquire(l, clock) == 0);
    l.on_response(answer(200, {}));
  }
  BOOST_TEST(l.wait_ms() > 0);
  // A larger server limit is adopted for the local budget.
  RateLimiter big(clock, opts(2, 1000));
  for (int i = 0; i < 2; ++i) {
    BOOST_REQUIRE(big.acquire().ok());
    big.on_response(answer(200, {{"RateLimit-Limit", "100"}}));
  }
  BOOST_TEST(big.wait_ms() == 0);
  BOOST_TEST(big.snapshot().limit == 100);
}

BOOST_AUTO_TEST_CASE(a_429_holds_calls_for_retry_after_then_reset_then_a_window) {
  FakeClock clock;
  RateLimiter l(clock, opts(60, 60000));
  BOOST_REQUIRE(l.acquire().ok());
  l.on_response(answer(429, {{"Retry-After", "7"}, {"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "30"}}));
  BOOST_TEST(timed_acquire(l, clock) == 7000);
  l.on_response(answer(429, {{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "3"}}));
  BOOST_TEST(timed_acquire(l, clock) == 3000);
  l.on_response(answer(429, {}));
  BOOST_TEST(timed_acquire(l, clock) == 60000);
  l.on_response(answer(200, {}));
  BOOST_TEST(l.snapshot().rate_limited == 3);
  // Garbage headers are ignored, not trusted.
  BOOST_REQUIRE(l.acquire().ok());
  l.on_response(answer(429, {{"Retry-After", "in a while"}, {"RateLimit-Reset", "-4"}}));
  BOOST_TEST(l.wait_ms() == 60000);
}

BOOST_AUTO_TEST_CASE(a_429_with_an_http_date_retry_after_holds_until_that_time) {
  FakeClock clock;  // 1,700,000,000 s = Tue, 14 Nov 2023 22:13:20 GMT
  RateLimiter l(clock, opts(60, 60000));
  BOOST_REQUIRE(l.acquire().ok());
  l.on_response(answer(429, {{"Retry-After", "Tue, 14 Nov 2023 22:13:32 GMT"}, {"RateLimit-Reset", "30"}}));
  BOOST_TEST(timed_acquire(l, clock) == 12000);  // the date wins over the announced reset
  l.on_response(answer(200, {}));
  // A date already past: retry now.
  BOOST_REQUIRE(l.acquire().ok());
  l.on_response(answer(429, {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
  BOOST_TEST(l.wait_ms() == 0);
}

BOOST_AUTO_TEST_CASE(bounded_and_cancellable_waits) {
  FakeClock clock;
  RateLimitOptions o = opts(1, 10000);
  o.max_wait_ms = 5000;
  RateLimiter l(clock, o);
  BOOST_REQUIRE(l.acquire().ok());
  l.on_response(answer(200, {}));
  BOOST_TEST(l.acquire().code() == Code::kRateLimited);
  std::atomic<bool> cancel{true};
  RateLimiter l2(clock, opts(1, 10000));
  BOOST_REQUIRE(l2.acquire().ok());
  l2.on_no_response();
  BOOST_TEST(l2.acquire([&] { return cancel.load(); }).code() == Code::kCancelled);
}

BOOST_AUTO_TEST_CASE(registry_shares_one_limiter_per_account) {
  FakeClock clock;
  RateLimiterRegistry reg(clock, opts(1, 1000));
  BOOST_TEST(&reg.for_account(1) == &reg.for_account(1));
  BOOST_TEST(&reg.for_account(1) != &reg.for_account(2));
  BOOST_REQUIRE(reg.for_account(1).acquire().ok());
  BOOST_TEST(reg.for_account(1).wait_ms() == 1000);
  BOOST_TEST(reg.for_account(2).wait_ms() == 0);
}
