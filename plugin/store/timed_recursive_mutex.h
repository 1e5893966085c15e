// timed_recursive_mutex.h: a recursive mutex with try_lock_until, made of std::mutex and
// std::condition_variable.
//
// Why not std::recursive_timed_mutex: libstdc++ implements its try_lock_until(steady_clock) with
// pthread_mutex_clocklock, which ThreadSanitizer (GCC 12's libtsan, clang 14's) does not
// intercept. A lock taken that way is invisible to TSan, so every access it protects is reported
// as a race and its unlock as "unlock of an unlocked mutex". This one synchronises only through
// pthread_mutex_lock/unlock and pthread_cond_clockwait, which TSan models, and costs one
// uncontended std::mutex round trip per lock or unlock.
//
// Meets the Lockable and TimedLockable requirements (std::lock_guard, std::unique_lock). The
// owning thread may lock it again; each lock needs its unlock. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace fb::detail {

class TimedRecursiveMutex {
 public:
  TimedRecursiveMutex() = default;
  TimedRecursiveMutex(const TimedRecursiveMutex&) = delete;
  TimedRecursiveMutex& operator=(const TimedRecursiveMutex&) = delete;

  void lock() {
    std::unique_lock lk(mu_);
    ++waiters_;
    cv_.wait(lk, [&] { return free_for_me(); });
    --waiters_;
    take();
  }
  bool try_lock() {
    std::lock_guard lk(mu_);
    if (!free_for_me()) return false;
    take();
    return true;
  }
  template <typename C, typename D>
  bool try_lock_until(const std::chrono::time_point<C, D>& deadline) {
    std::unique_lock lk(mu_);
    ++waiters_;
    bool got = cv_.wait_until(lk, deadline, [&] { return free_for_me(); });
    --waiters_;
    if (got) take();
    return got;
  }
  template <typename R, typename P>
  bool try_lock_for(const std::chrono::duration<R, P>& d) {
    return try_lock_until(std::chrono::steady_clock::now() + d);
  }
  void unlock() {
    std::lock_guard lk(mu_);
    if (--depth_ > 0) return;
    owner_ = std::thread::id();
    // Every waiter, not one: a waiter whose deadline passes as it is woken must not swallow the
    // only wake-up while another one still waits.
    if (waiters_ > 0) cv_.notify_all();
  }

 private:
  bool free_for_me() const { return depth_ == 0 || owner_ == std::this_thread::get_id(); }
  void take() {
    owner_ = std::this_thread::get_id();
    ++depth_;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread::id owner_;  // guarded by mu_
  int depth_ = 0;          // guarded by mu_
  int waiters_ = 0;        // guarded by mu_
};

}  // namespace fb::detail
