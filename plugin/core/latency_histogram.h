// latency_histogram.h: a fixed-bucket latency histogram that is cheap enough for the hot path.
//
//   LatencyHistogram h;
//   int64_t t0 = LatencyHistogram::now_ns();
//   ... work ...
//   h.observe_since(t0);                    // a few relaxed atomic adds, no lock
//   h.snapshot();                           // counts per bucket, for /metrics (server/metrics.h)
//
// Buckets are upper bounds in seconds, from 25 us to 30 s (a webhook ingest takes ~30 us, a
// processed event milliseconds to seconds). Threading: observe and snapshot from any thread; a
// snapshot taken while observations run may be off by the observations in flight, never torn.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace fb::detail {

class LatencyHistogram {
 public:
  static constexpr std::array<int64_t, 18> kBoundsNs = {
      25'000,      50'000,      100'000,     250'000,       500'000,       1'000'000,
      2'500'000,   5'000'000,   10'000'000,  25'000'000,    50'000'000,    100'000'000,
      250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 10'000'000'000, 30'000'000'000};
  static constexpr size_t kBuckets = kBoundsNs.size() + 1;  // the last one is +Inf

  struct Snapshot {
    std::array<int64_t, kBuckets> counts{};  // per bucket, not cumulative
    int64_t count = 0;
    int64_t sum_ns = 0;
  };

  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void observe_ns(int64_t ns) {
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns < 0 ? 0 : ns, std::memory_order_relaxed);
  }
  void observe_since(int64_t start_ns) { observe_ns(now_ns() - start_ns); }

  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
      s.count += s.counts[i];
    }
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<int64_t>, kBuckets> counts_{};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace fb::detail
