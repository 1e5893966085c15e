// sim_process.h: runs fathom-sim as a child process for one test.
//
//   fb::test::SimProcess sim({"--token-ttl", "5", "--meetings", "30"});
//   auto users = sim.users();                       // [{email, name, team, api_key}]
//   sim.admin("POST", "/_sim/config", {{"rate_limit", 5}});
//   auto c = sim.counters();                        // GET /_sim/counters
//
// The constructor forks and execs the binary with "--port 0 --quiet" plus the given arguments,
// reads the first stdout line ("fathom-sim listening on http://127.0.0.1:PORT") within a deadline,
// then polls GET /_sim/health until it answers. Any failure throws std::runtime_error with the
// reason (binary missing, no address line, never healthy). The destructor sends SIGTERM, waits,
// and SIGKILLs after 5 s; the child also dies with the parent (PR_SET_PDEATHSIG).
//
// The binary: $FATHOM_SIM_BIN when set, else <FB_BINARY_DIR>/tests/sim/fathom-sim.
// Set FATHOM_SIM_VERBOSE=1 to let the simulator log each request to stderr.
//
// Thread safety: admin() and the accessors may be called from several threads at once.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fb::test {

class SimProcess {
 public:
  explicit SimProcess(std::vector<std::string> args = {});
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  // "http://127.0.0.1:PORT"
  const std::string& base_url() const { return base_url_; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // base_url() + "/external/v1"
  std::string api_base() const;
  // api_base() + "/oauth2/token" and "/oauth2/authorize"
  std::string token_url() const;
  std::string authorize_url() const;
  // The "fathom" section of a bridge config for this simulator: its OAuth client (sim-client /
  // sim-secret), the given redirect URI and its three endpoints.
  nlohmann::json fathom_settings(const std::string& redirect_uri) const;

  // Calls an admin route and returns its JSON body ({} for an empty body). path is "/_sim/..."
  // (a path without a leading '/' gets "/_sim/" prepended). A null body sends no body. Throws
  // std::runtime_error naming the route, status and body on a non-2xx answer.
  nlohmann::json admin(const std::string& method, const std::string& path,
                       const nlohmann::json& body = nullptr) const;
  nlohmann::json counters() const { return admin("GET", "/_sim/counters"); }
  nlohmann::json users() const { return admin("GET", "/_sim/users"); }
  // POST /_sim/config with the given knobs; returns the full configuration after the change.
  nlohmann::json config(const nlohmann::json& knobs) const { return admin("POST", "/_sim/config", knobs); }
  // The API key of a user (throws when the user does not exist).
  std::string api_key(const std::string& email) const;

  // Plays the browser on the authorize page: GETs `authorize_request_url` (the full URL the client
  // would open, with client_id, redirect_uri, state, ...), checks it is the Approve/Deny page, then
  // POSTs the page's form with user=<email> and decision=approve|deny. Returns the Location of
  // the 302 (redirect_uri?code=..&state=.. or ?error=access_denied&state=..). Throws with the
  // status and body when the page or the decision is not answered as expected.
  std::string authorize_as(const std::string& authorize_request_url, const std::string& email,
                           const std::string& decision = "approve") const;

  // Stops the process now (the destructor does it otherwise). Idempotent.
  void stop();

  // The binary that would be started.
  static std::string binary_path();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
  std::string base_url_;
};

}  // namespace fb::test
