// host_fixture.h: a host as the e2e suites use one: fb::Bridge with its sidecar on a free loopback
// port, Fathom being fathom-sim, an in-process CRM that answers every operation, and the store of
// the run's engine (TempDir::store: a SQLite file, or a PostgreSQL database in the _postgresql run).
#pragma once

#include <boost/test/unit_test.hpp>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "webhooks/verifier.h"

namespace fb::test {

inline const char* const kCrmOps[] = {"find_company_by_domain", "find_contact_by_email", "find_deal",
                                      "upsert_company",         "upsert_contact",        "log_activity",
                                      "create_task",            "create_deal",           "attach_recording"};

// The "store" section of a config for a target (a SQLite file or a PostgreSQL URL).
inline nlohmann::json store_settings(const std::string& target) { return {{store_key(target), target}}; }

// webhooks.public_base_url is the sidecar's origin. `extra` is merged into the config last (a
// "store" in it replaces the run's store).
struct Host {
  explicit Host(nlohmann::json extra = nlohmann::json::object(),
                std::vector<std::string> sim_args = {"--meetings", "8", "--seed", "9"})
      : own_sim(std::make_unique<SimProcess>(sim_args)), sim(*own_sim) {
    open(extra);
  }
  // A host on a simulator another host shares (several hosts of one Fathom).
  Host(SimProcess& shared_sim, nlohmann::json extra) : sim(shared_sim) { open(extra); }
  ~Host() { shutdown(); }
  // Stops the sidecar, then the bridge and its workers, which may be in a CRM handler this host (or
  // a test's own CRM object) registered: members are destroyed in reverse order, so crm_calls and
  // mu went before the bridge, while a webhook worker still counted into them (TSan saw it).
  void shutdown() {
    if (sidecar) sidecar->stop();
    sidecar.reset();
    bridge.reset();
  }

  void open(const nlohmann::json& extra) {
    nlohmann::json cfg = {{"fathom", sim.fathom_settings(origin + "/oauth/callback")},
                          {"frontend", {{"url", origin}}},
                          {"tokens", {{"key", detail::base64_encode(std::string(32, 'h'))}}},
                          {"webhooks", {{"public_base_url", origin}}},
                          {"store", store_settings(dir.store("host.db"))},
                          {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
                          {"sync", {{"scheduler", false}}},
                          {"server", {{"api_token", token}}},
                          {"log_level", "error"}};
    cfg.merge_patch(extra);
    if (extra.contains("store")) cfg["store"] = extra["store"];  // a store of its own replaces the run's
    config_json = cfg;
    auto config = parse_config(cfg.dump(), false);
    BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    auto opened = Bridge::open(*config);
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    bridge = std::move(*opened);
    for (const char* op : kCrmOps) {
      BOOST_REQUIRE(bridge->register_crm_operation(op, [this](const CrmCall& c) -> Result<std::string> {
        std::lock_guard lock(mu);
        ++crm_calls[c.tenant_id];
        return c.operation.rfind("find_", 0) == 0 ? std::string("null") : std::string(R"({"id":"x"})");
      }).ok());
    }
    auto sc = detail::Sidecar::start(*bridge, port);
    BOOST_REQUIRE_MESSAGE(sc.ok(), sc.status().to_string());
    sidecar = std::move(*sc);
  }

  HttpReply get(const std::string& path) { return http_get(origin + path, auth()); }
  HttpReply post(const std::string& path, const nlohmann::json& body) { return http_post_json(origin + path, body, auth()); }
  HeaderMap auth() const { return {{"Authorization", "Bearer " + token}}; }

  int64_t connect(const std::string& tenant, const std::string& user, const std::string& fathom_user) {
    auto id = bridge->connect_api_key({tenant, user, ""}, sim.api_key(fathom_user));
    BOOST_REQUIRE_MESSAGE(id.ok(), id.status().to_string());
    return *id;
  }

  int port = free_port();
  // The config the bridge was opened with (for a command-line tool on the same store).
  nlohmann::json config_json;
  std::string origin = "http://127.0.0.1:" + std::to_string(port);
  std::string token = "host-test-token";
  std::unique_ptr<SimProcess> own_sim;
  SimProcess& sim;
  TempDir dir;
  std::unique_ptr<Bridge> bridge;
  std::unique_ptr<detail::Sidecar> sidecar;
  std::mutex mu;
  std::map<std::string, int> crm_calls;
};

// A delivery signed with secret, posted to the sidecar at path as Fathom would; returns the status.
inline int post_signed(Host& h, const std::string& path, const std::string& secret, const std::string& msg_id,
                       int64_t recording_id) {
  auto key = detail::SigningKey::from_secret(detail::SecretString(secret));
  BOOST_REQUIRE(key.ok());
  std::string body = R"({"recording_id":)" + std::to_string(recording_id) + R"(,"title":"Signed by hand"})";
  std::string ts = std::to_string(std::time(nullptr));
  HttpCall call{"POST", h.origin + path, {}, body, "application/json"};
  call.headers = {{"webhook-id", msg_id}, {"webhook-timestamp", ts}, {"webhook-signature", key->sign(msg_id, ts, body)}};
  return http_request(call).status;
}

}  // namespace fb::test
