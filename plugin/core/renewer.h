// renewer.h: a lease's heartbeat. Runs a renewal on a thread of its own every `every` until it is
// destroyed or the renewal says there is nothing left to renew, for leases that must not lapse while
// their holder is alive but busy elsewhere: a sync run's lease during a long page
// (sync/sync_engine.cpp), a token refresh's lease while its request is out (oauth/token_manager.cpp).
// A holder that dies stops renewing with it, so its lease still ends after at most its length.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace fb::detail {

class Renewer {
 public:
  // renew() runs on the renewer's thread; it returns false once the lease is no longer its holder's
  // (finished, or taken over), which ends the renewals. A failed renewal that may pass (a busy or
  // unreachable store) returns true: tried again at the next beat, while the lease may still run.
  Renewer(std::chrono::milliseconds every, std::function<bool()> renew)
      : every_(every), renew_(std::move(renew)), thread_([this] { loop(); }) {}
  ~Renewer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Renewer(const Renewer&) = delete;
  Renewer& operator=(const Renewer&) = delete;

 private:
  void loop() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      const bool more = renew_();
      lock.lock();
      if (!more) return;
    }
  }

  const std::chrono::milliseconds every_;
  const std::function<bool()> renew_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // guarded by mu_
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace fb::detail
