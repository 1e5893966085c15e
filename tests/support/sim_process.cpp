#include "support/sim_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "support/http.h"

namespace fb::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartDeadline = std::chrono::seconds(15);
constexpr auto kStopDeadline = std::chrono::seconds(5);
const std::string kAddressPrefix = "fathom-sim listening on ";

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

// Reads one '\n'-terminated line from fd before the deadline. Returns false on EOF or timeout.
bool read_line(int fd, Clock::time_point deadline, std::string* line) {
  line->clear();
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 1)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    char c;
    ssize_t got = ::read(fd, &c, 1);  // byte by byte: only the first line is ever read
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    if (c == '\n') return true;
    *line += c;
  }
  return false;
}

}  // namespace

std::string SimProcess::binary_path() {
  if (const char* env = std::getenv("FATHOM_SIM_BIN"); env && *env) return env;
  return std::string(FB_BINARY_DIR) + "/tests/sim/fathom-sim";
}

SimProcess::SimProcess(std::vector<std::string> args) {
  std::string bin = binary_path();
  if (::access(bin.c_str(), X_OK) != 0) {
    throw std::runtime_error("SimProcess: fathom-sim binary not found or not executable at '" + bin +
                             "' (build the fathom-sim target or set FATHOM_SIM_BIN)");
  }
  std::vector<std::string> argv_s = {bin, "--port", "0"};
  if (!env_set("FATHOM_SIM_VERBOSE")) argv_s.push_back("--quiet");
  argv_s.insert(argv_s.end(), args.begin(), args.end());

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("SimProcess: pipe: ") + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("SimProcess: fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  pid_ = pid;
  stdout_fd_ = fds[0];

  auto deadline = Clock::now() + kStartDeadline;
  std::string line;
  if (!read_line(stdout_fd_, deadline, &line) || line.rfind(kAddressPrefix, 0) != 0) {
    stop();
    throw std::runtime_error("SimProcess: fathom-sim did not print its address line (got '" + line +
                             "'); check its stderr for the reason (bad arguments?)");
  }
  base_url_ = line.substr(kAddressPrefix.size());
  size_t colon = base_url_.rfind(':');
  port_ = colon == std::string::npos ? 0 : std::atoi(base_url_.c_str() + colon + 1);

  while (true) {
    HttpCall call;
    call.url = base_url_ + "/_sim/health";
    call.timeout_s = 2;
    if (http_request(call).status == 200) break;
    if (Clock::now() >= deadline) {
      stop();
      throw std::runtime_error("SimProcess: fathom-sim at " + base_url_ + " never answered /_sim/health");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

SimProcess::~SimProcess() { stop(); }

void SimProcess::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + kStopDeadline;
    bool reaped = false;
    while (Clock::now() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        reaped = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

std::string SimProcess::api_base() const { return base_url_ + "/external/v1"; }
std::string SimProcess::token_url() const { return api_base() + "/oauth2/token"; }
std::string SimProcess::authorize_url() const { return api_base() + "/oauth2/authorize"; }

nlohmann::json SimProcess::admin(const std::string& method, const std::string& path, const nlohmann::json& body) const {
  HttpCall call;
  call.method = method;
  call.url = base_url_ + (path.rfind('/', 0) == 0 ? path : "/_sim/" + path);
  if (!body.is_null()) {
    call.body = body.dump();
    call.content_type = "application/json";
  }
  HttpReply r = http_request(call);
  if (r.status < 200 || r.status >= 300) {
    throw std::runtime_error("fathom-sim admin " + method + " " + path + " failed: " +
                             (r.status ? "HTTP " + std::to_string(r.status) + " " + r.body : r.error));
  }
  if (r.body.empty()) return nlohmann::json::object();
  return r.json();
}

std::string SimProcess::api_key(const std::string& email) const {
  for (const auto& u : users()) {
    if (u.value("email", "") == email) return u.value("api_key", "");
  }
  throw std::runtime_error("fathom-sim has no user '" + email + "'");
}

std::string SimProcess::authorize_as(const std::string& authorize_request_url, const std::string& email,
                                     const std::string& decision) const {
  HttpReply page = http_get(authorize_request_url);
  if (page.status != 200 || page.body.find("name=\"decision\"") == std::string::npos) {
    throw std::runtime_error("fathom-sim authorize page: HTTP " + std::to_string(page.status) + " " +
                             page.body.substr(0, 300));
  }
  auto fields = parse_query(authorize_request_url);
  fields.emplace_back("user", email);
  fields.emplace_back("decision", decision);
  HttpReply r = http_post_form(authorize_url(), fields);
  if (r.status != 302 || r.header("Location").empty()) {
    throw std::runtime_error("fathom-sim authorize decision: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300));
  }
  return r.header("Location");
}

nlohmann::json SimProcess::fathom_settings(const std::string& redirect_uri) const {
  return {{"client_id", "sim-client"},
          {"client_secret", "sim-secret"},
          {"redirect_uri", redirect_uri},
          {"authorize_url", authorize_url()},
          {"token_url", token_url()},
          {"api_base", api_base()}};
}

}  // namespace fb::test
