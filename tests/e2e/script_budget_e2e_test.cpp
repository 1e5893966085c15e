// Issue 10, point 1, end to end: one tenant's mapping loops inside an xpcall message handler
// (which used to run with no budget at all and froze every webhook worker for every tenant); the
// other tenant's webhooks must keep being processed through the real sidecar, inbox and workers,
// the looping events must fail with the budget's error (and be retried, not lost), and the health
// route must keep answering.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

const char* const kLoopingMapping = R"LUA(-- The tenant "loopy" has a mapping that loops in its error handler.
local function loop() while true do end end
function on_meeting(meeting, ctx)
  if ctx.tenant_id == "loopy" then
    return xpcall(loop, function(e) while true do end end)
  end
  crm.log_activity({ type = "meeting", title = meeting.title, recording_id = meeting.recording_id })
end
)LUA";

// Counts the activities per recording the steady tenant's mapping logged.
class ActivityLog {
 public:
  fb::Result<std::string> call(const fb::CrmCall& c) {
    std::lock_guard lock(mu_);
    recordings_.insert(json::parse(c.args_json).value("recording_id", int64_t{0}));
    return json{{"id", "act_" + std::to_string(recordings_.size())}}.dump();
  }
  bool has_all(const std::vector<int64_t>& recs) {
    std::lock_guard lock(mu_);
    for (int64_t r : recs) {
      if (!recordings_.count(r)) return false;
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::set<int64_t> recordings_;
};

// A wait that, when it fails, must not leave the test hanging on workers that never return
// (Bridge's destructor joins them): it reports and ends the process.
void require_or_exit(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "FAILED: %s\n", what);
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_script_looping_in_its_message_handler_does_not_stop_other_tenants_webhooks) {
  const int port = free_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim({"--meetings", "0", "--seed", "5", "--redirect-uri", base + "/oauth/callback"});
  sim.admin("POST", "/_sim/users", {{"email", "mallory@loopy.test"}, {"team", "Loopy"}});
  TempDir dir;
  std::filesystem::create_directories(dir.file("scripts"));
  std::ofstream(dir.file("scripts/mapping.lua")) << kLoopingMapping;

  json cfg = {{"fathom", sim.fathom_settings(base + "/oauth/callback")},
              {"frontend", {{"url", base}}},
              {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'k'))}}},
              {"webhooks", {{"public_base_url", base}, {"workers", 2}, {"backoff_base_ms", 60000}}},
              {"store", {{store_key(dir.store("bridge.db")), dir.store("bridge.db")}}},
              // The time budget alone stops the loops: an instruction budget a fast machine would reach
              // first (50M in under 300 ms) is set out of reach, so the two limits cannot race.
              {"scripts", {{"dir", dir.file("scripts")}, {"time_limit_ms", 300}, {"instruction_limit", int64_t{1} << 50}, {"pool_size", 2}}},
              {"sync", {{"scheduler", false}}},
              {"server", {{"api_token", "budget-e2e"}}}};
  auto config = fb::parse_config(cfg.dump(), false);
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  auto opened = fb::Bridge::open(*config);
  BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  fb::Bridge& bridge = **opened;
  ActivityLog crm;
  BOOST_REQUIRE(bridge.register_crm_operation("log_activity", [&](const fb::CrmCall& c) { return crm.call(c); }).ok());
  auto sidecar = fb::detail::Sidecar::start(bridge, port);
  BOOST_REQUIRE_MESSAGE(sidecar.ok(), sidecar.status().to_string());
  HeaderMap auth{{"Authorization", "Bearer budget-e2e"}};

  // Two tenants connect; each gets its own Fathom webhook.
  auto connect = [&](const std::string& tenant, const std::string& email) {
    HttpReply start = http_post_json(base + "/v1/connect/start", {{"tenant_id", tenant}, {"user_id", "u1"}}, auth);
    BOOST_REQUIRE_EQUAL(start.status, 200);
    std::string location = sim.authorize_as(start.json()["authorize_url"], email, "approve");
    BOOST_REQUIRE_EQUAL(http_get(location).status, 200);
  };
  connect("loopy", "mallory@loopy.test");
  connect("steady", "alice@example.com");
  json hooks = sim.admin("GET", "/_sim/webhooks");
  BOOST_REQUIRE_EQUAL((hooks.is_array() ? hooks : hooks["webhooks"]).size(), 2u);

  auto complete_meetings = [&](const std::string& email, int n) {
    json added = sim.admin("POST", "/_sim/meetings", {{"count", n}, {"recorded_by", email}});
    std::vector<int64_t> recs;
    for (const auto& r : added["recording_ids"]) {
      recs.push_back(r.get<int64_t>());
      sim.admin("POST", "/_sim/meetings/" + std::to_string(recs.back()) + "/complete");
    }
    return recs;
  };
  // First the looping tenant's webhooks, one per worker, then the steady tenant's.
  std::vector<int64_t> loopy = complete_meetings("mallory@loopy.test", 2);
  std::vector<int64_t> steady = complete_meetings("alice@example.com", 3);

  require_or_exit(eventually([&] { return crm.has_all(steady); }, 60000),
                  "the steady tenant's webhooks were not mapped within 60 s: the looping script holds the workers");
  BOOST_TEST(http_get(base + "/healthz").status == 200);

  // The looping tenant's events failed with the budget's error, and wait for a retry.
  require_or_exit(eventually(
                      [&] {
                        json ev = http_get(base + "/v1/webhooks/events?status=pending", auth).json();
                        int budget_errors = 0;
                        for (const auto& e : ev) {
                          std::string err = e["last_error"].is_string() ? e["last_error"].get<std::string>() : "";
                          if (err.find("script exceeded its time budget of 300 ms") != std::string::npos) ++budget_errors;
                        }
                        return budget_errors == 2;
                      },
                      60000),
                  "the looping tenant's two events did not fail with the time budget's error");
  json done = http_get(base + "/v1/webhooks/events?status=done", auth).json();
  BOOST_TEST(done.size() == steady.size());

  (*sidecar)->stop();
  opened->reset();
}
