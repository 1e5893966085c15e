// The fleet test of issue 12: three `fathom-bridge serve` processes (three app servers of a CRM
// behind a load balancer) on ONE PostgreSQL database, against fathom-sim with rotating single-use
// refresh tokens (a spent refresh token used again revokes the whole grant).
//   (1) connect starts on host 1, the OAuth callback arrives at host 2, host 3 hands out the token;
//   (2) 50 concurrent token requests spread over the three hosts, with an expired access token:
//       exactly one refresh at the simulator, no invalid_grant, every caller gets the new token.
// Registered only as fb_fleet_test_postgresql (a fleet needs the shared store).
#define BOOST_TEST_MODULE fb_fleet
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "crypto/encoding.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

const std::string kCli = std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge";
const std::string kToken = "fleet-token";

// One app server: `fathom-bridge serve` with its stderr in a file, SIGKILLed at the end.
class Host {
 public:
  Host(const std::string& config, const std::string& log, int port)
      : log_(log), base_("http://127.0.0.1:" + std::to_string(port)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(err, STDERR_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::execl(kCli.c_str(), kCli.c_str(), "serve", "--config", config.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Host() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& base() const { return base_; }
  std::string log() const { return read_file(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_, base_;
};

std::vector<std::string> with_redirect(std::vector<std::string> args, const std::string& callback) {
  args.push_back("--redirect-uri");
  args.push_back(callback);
  return args;
}

// fathom-sim and three hosts sharing the store `url`; every host's redirect URI is host 2's
// callback (the load balancer sent the browser there).
struct Fleet {
  explicit Fleet(std::vector<std::string> sim_args)
      : ports{free_port(), free_port(), free_port()},
        callback("http://127.0.0.1:" + std::to_string(ports[1]) + "/oauth/callback"),
        sim(with_redirect(std::move(sim_args), callback)) {
    const std::string url = dir.store("fleet.db");
    for (int i = 0; i < 3; ++i) {
      const std::string config = dir.file("host" + std::to_string(i + 1) + ".json");
      std::ofstream(config) << json{
          {"fathom", sim.fathom_settings(callback)},
          {"frontend", {{"url", "http://127.0.0.1:" + std::to_string(ports[0])}}},
          {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'f'))}}},
          {"store", {{"url", url}, {"pool_size", 4}}},
          {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
          {"sync", {{"scheduler", false}}},
          {"server", {{"port", ports[i]}, {"api_token", kToken}, {"threads", 24}}}}.dump();
      hosts.push_back(std::make_unique<Host>(config, dir.file("host" + std::to_string(i + 1) + ".log"), ports[i]));
    }
    for (auto& h : hosts) {
      BOOST_REQUIRE_MESSAGE(eventually([&] { return http_get(h->base() + "/healthz").status == 200; }), h->log());
    }
  }
  HeaderMap auth() const { return {{"Authorization", "Bearer " + kToken}}; }

  std::vector<int> ports;
  std::string callback;
  SimProcess sim;
  TempDir dir;
  std::vector<std::unique_ptr<Host>> hosts;
};

int64_t counter(const json& c, const char* group, const char* key) {
  return c.contains(group) && c[group].contains(key) ? c[group][key].get<int64_t>() : 0;
}

// Connects acme/u1 through the redirect flow: started on host 1, the callback on host 2. Returns
// the integration id as host 3 reports it.
int64_t connect_across_hosts(Fleet& f) {
  HttpReply started = http_post_json(f.hosts[0]->base() + "/v1/connect/start",
                                     {{"tenant_id", "acme"}, {"user_id", "u1"}, {"mode", "redirect"}}, f.auth());
  BOOST_REQUIRE_MESSAGE(started.status == 200, started.body);
  const std::string location = f.sim.authorize_as(started.json()["authorize_url"], "alice@example.com");
  BOOST_REQUIRE_MESSAGE(location.rfind(f.hosts[1]->base() + "/oauth/callback?", 0) == 0, location);
  HttpReply callback = http_get(location);  // host 2 never saw this state: it is in the shared store
  BOOST_REQUIRE_MESSAGE(callback.status == 302, callback.status << " " << callback.body << "\n" << f.hosts[1]->log());
  auto back = callback.headers.find("Location");
  BOOST_REQUIRE(back != callback.headers.end());
  BOOST_TEST(back->second.find("error") == std::string::npos, back->second);
  HttpReply health = http_get(f.hosts[2]->base() + "/v1/token-health?tenant_id=acme&user_id=u1", f.auth());
  BOOST_REQUIRE_MESSAGE(health.status == 200, health.body);
  json list = health.json();
  if (list.is_object() && list.contains("integrations")) list = list["integrations"];
  BOOST_REQUIRE_MESSAGE(list.is_array() && list.size() == 1, health.body);
  return list[0]["integration_id"].get<int64_t>();
}

HttpReply access_token(Fleet& f, int host, int64_t id) {
  return http_post_json(f.hosts[host]->base() + "/v1/access-token",
                        {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}}, f.auth());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fleet)

BOOST_AUTO_TEST_CASE(connect_starts_on_host_1_and_the_callback_arrives_at_host_2) {
  BOOST_REQUIRE(store_engine_is_postgres());
  Fleet f({"--revoke-grant-on-reuse"});
  const int64_t id = connect_across_hosts(f);
  // Every host hands out the same token from the shared store.
  std::set<std::string> tokens;
  for (int h = 0; h < 3; ++h) {
    HttpReply t = access_token(f, h, id);
    BOOST_REQUIRE_MESSAGE(t.status == 200, "host " << h + 1 << ": " << t.body);
    tokens.insert(t.json()["access_token"].get<std::string>());
  }
  BOOST_TEST(tokens.size() == 1u);
  json c = f.sim.counters();
  BOOST_TEST(counter(c, "token_requests", "authorization_code") == 1);
  BOOST_TEST(counter(c, "token_requests", "refresh_token") == 0);
}

BOOST_AUTO_TEST_CASE(fifty_concurrent_token_requests_over_three_hosts_refresh_once) {
  BOOST_REQUIRE(store_engine_is_postgres());
  // Access tokens live 2 s: connected, then expired before the callers come.
  Fleet f({"--revoke-grant-on-reuse", "--token-ttl", "2"});
  const int64_t id = connect_across_hosts(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  f.sim.config({{"token_ttl_s", 86400}});  // the refreshed token lives long: one refresh is enough

  constexpr int kCallers = 50;
  std::vector<HttpReply> replies(kCallers);
  std::atomic<bool> go{false};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      replies[i] = access_token(f, i % 3, id);
    });
  }
  go = true;
  for (auto& t : callers) t.join();

  std::set<std::string> tokens;
  int ok = 0;
  for (const HttpReply& r : replies) {
    if (r.status == 200) {
      ++ok;
      tokens.insert(r.json()["access_token"].get<std::string>());
    } else {
      BOOST_TEST_MESSAGE("caller failed: " << r.status << " " << r.body);
    }
  }
  json c = f.sim.counters();
  BOOST_TEST(ok == kCallers);
  BOOST_TEST(counter(c, "token_requests", "refresh_token") == 1);  // exactly one refresh in the fleet
  BOOST_TEST(counter(c, "token_errors", "invalid_grant") == 0);
  BOOST_TEST(tokens.size() == 1u);  // everyone got the refreshed token
  // And the grant is alive: the next request on any host still works without another refresh.
  HttpReply again = access_token(f, 2, id);
  BOOST_TEST(again.status == 200, again.body);
  BOOST_TEST(counter(f.sim.counters(), "token_requests", "refresh_token") == 1);
}

BOOST_AUTO_TEST_SUITE_END()
