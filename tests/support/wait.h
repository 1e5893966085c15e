// wait.h: small helpers for tests that talk to servers and processes.
//
//   int port = fb::test::free_port();                 // a loopback port nobody listens on now
//   BOOST_TEST(fb::test::eventually([&] { return done(); }));   // polls every 20 ms, 15 s at most
//   auto r = fb::test::run_command("node x.mjs 2>&1");            // exit code and stdout
#pragma once

#include <chrono>
#include <string>
#include <thread>

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

}  // namespace fb::test
