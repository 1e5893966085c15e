// LogCapture: the log lines ("component: message") written while it lives, for tests that check
// what the library logs (and how often).
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"

namespace fb::test {

struct LogCapture {
  LogCapture() {
    detail::set_log_sink([this](detail::LogLevel, std::string_view c, std::string_view m) {
      std::lock_guard lk(mu);
      lines.push_back(std::string(c) + ": " + std::string(m));
    });
  }
  ~LogCapture() { detail::set_log_sink(nullptr); }
  std::string all() {
    std::lock_guard lk(mu);
    std::string s;
    for (auto& l : lines) s += l + "\n";
    return s;
  }
  // The lines that contain `text`.
  std::vector<std::string> matching(std::string_view text) {
    std::lock_guard lk(mu);
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (l.find(text) != std::string::npos) out.push_back(l);
    }
    return out;
  }
  std::mutex mu;
  std::vector<std::string> lines;
};

}  // namespace fb::test
