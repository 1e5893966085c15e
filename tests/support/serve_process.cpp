#include "support/serve_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

namespace fb::test {

ServeProcess::ServeProcess(const std::string& config, const std::string& stderr_path) {
  const std::string cli = std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge";
  pid_ = ::fork();
  if (pid_ == 0) {
    int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(err, STDERR_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::execl(cli.c_str(), cli.c_str(), "serve", "--config", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
}

ServeProcess::~ServeProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

int ServeProcess::wait_exit(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace fb::test
