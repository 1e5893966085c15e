// wait.h: small helpers for tests that talk to servers and processes.
//
//   int port = fb::test::free_port();                 // a loopback port nobody listens on now
//   BOOST_TEST(fb::test::eventually([&] { return done(); }));   // polls every 20 ms, 15 s at most
//   auto r = fb::test::run_command("node x.mjs 2>&1");            // exit code and stdout
//   fb::test::Answers<int> answers(2);   // callbacks on other threads: answers.put(i, v)
//   std::vector<int> got = answers.wait();
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace fb::test {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int free_port();

// Runs cmd with /bin/sh and collects its standard output (add 2>&1 for stderr too).
struct CommandResult {
  bool ran = false;    // the shell could be started
  int exit_code = -1;  // -1 when it did not exit normally
  std::string output;
};
CommandResult run_command(const std::string& cmd);

// Polls cond until it is true or timeout_ms passes; returns its last value.
template <typename F>
bool eventually(F&& cond, int timeout_ms = 15000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// Collects n answers that callbacks on other threads hand over, answer i in slot i; wait() returns
// them once all are in. The object may be destroyed as soon as wait() returns: the last put()
// notifies while it still holds the lock, so it has left the object before wait() can go on. (A
// promise set under a mutex the waiter then destroys is a data race ThreadSanitizer reports.)
template <typename T>
class Answers {
 public:
  explicit Answers(size_t n) : slots_(n) {}
  void put(size_t i, T value) {
    std::lock_guard lk(mu_);
    slots_.at(i) = std::move(value);
    if (++given_ == slots_.size()) cv_.notify_all();
  }
  std::vector<T> wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return given_ == slots_.size(); });
    std::vector<T> out;
    out.reserve(slots_.size());
    for (auto& s : slots_) out.push_back(std::move(*s));
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::optional<T>> slots_;
  size_t given_ = 0;
};

}  // namespace fb::test
