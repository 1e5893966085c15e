// serve_process.h: `fathom-bridge serve --config FILE` as a child process (an app server of a
// test or a benchmark), its stderr in a file, its stdout discarded; SIGKILLed at destruction if it
// is still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace fb::test {

class ServeProcess {
 public:
  // Starts build/plugin/cli/fathom-bridge. pid() is -1 when fork failed.
  ServeProcess(const std::string& config, const std::string& stderr_path);
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits up to timeout for the exit; the wait status, or -1 when it is still running.
  int wait_exit(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

}  // namespace fb::test
