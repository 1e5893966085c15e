// clock.h: the time seam. Production code asks a Clock for the time; tests pass a FakeClock.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace fb::detail {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock Unix time in milliseconds.
  virtual int64_t now_ms() const = 0;
  // Monotonic milliseconds, for deadlines and durations.
  virtual int64_t mono_ms() const = 0;
  // Blocks for ms milliseconds (a FakeClock advances instead). Thread-safe.
  virtual void sleep_ms(int64_t ms) = 0;
  int64_t now_s() const { return now_ms() / 1000; }
};

// The process clock. Thread-safe; system_clock() returns a shared instance.
class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override;
  int64_t mono_ms() const override;
  void sleep_ms(int64_t ms) override;
};
Clock& system_clock();

// A manually driven clock for tests. sleep_ms advances time instead of blocking. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(); }
  int64_t mono_ms() const override { return now_.load(); }
  void sleep_ms(int64_t ms) override { now_ += ms; }
  void advance_ms(int64_t ms) { now_ += ms; }
  void set_ms(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

// ISO 8601 UTC with a Z suffix, seconds precision: "2025-03-01T17:01:30Z".
std::string format_iso8601(int64_t unix_s);
// Parses "2025-03-01T17:01:30Z", with optional fractional seconds and a Z or +hh:mm offset.
// Returns false on malformed input.
bool parse_iso8601(const std::string& text, int64_t* unix_s);

}  // namespace fb::detail
