// The sync engine with the real oauth layer: IntegrationStore as the IntegrationDirectory and
// TokenManager as the CredentialSource, against fathom-sim's token endpoint.
#include <boost/test/unit_test.hpp>

#include <nlohmann/json.hpp>

#include "oauth/integration_store.h"
#include "oauth/token_endpoint.h"
#include "oauth/token_manager.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "sync/sync_test_env.h"

using namespace fb;
using namespace fb::detail;

BOOST_AUTO_TEST_CASE(token_manager_refreshes_mid_sync_and_a_revoked_grant_stops_syncing) {
  test::SimProcess sim({"--meetings", "60"});
  test::TempDir dir;
  const std::string path = dir.store("bridge.db");
  auto db = Db::open(path).value();
  TokenConfig tc;
  tc.key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  auto sealer = make_sealer(tc).value();
  IntegrationStore integrations(*db, *sealer, system_clock());
  BOOST_REQUIRE(integrations.migrate().ok());
  HttplibTransport http;
  TokenEndpointOptions teo;
  teo.token_url = sim.token_url();
  teo.client_id = "sim-client";
  teo.client_secret = SecretString("sim-secret");
  TokenEndpoint endpoint(http, system_clock(), system_random(), teo);

  const std::string redirect = "http://127.0.0.1:8787/oauth/callback";
  auto page = test::http_post_form(sim.authorize_url(), {{"client_id", "sim-client"},
                                                         {"redirect_uri", redirect},
                                                         {"response_type", "code"},
                                                         {"scope", "public_api"},
                                                         {"state", "s"},
                                                         {"user", "alice@example.com"},
                                                         {"decision", "approve"}});
  std::string code = test::query_param(page.header("Location"), "code");
  BOOST_REQUIRE(!code.empty());
  auto grant = endpoint.exchange_code(SecretString(code), redirect, SecretString());
  BOOST_REQUIRE_MESSAGE(grant.ok(), grant.status());
  auto connected = integrations.save_oauth(Principal{"tenant-a", "user-1", ""}, *grant);
  BOOST_REQUIRE_MESSAGE(connected.ok(), connected.status());
  const int64_t id = connected->integration_id;

  TokenManager tokens(integrations, endpoint, nullptr, TokenManagerOptions{}, system_clock(), system_random());
  test::CountingPipeline pipeline;
  test::SyncEnv env(sim.api_base(), tokens, integrations, path, &pipeline);
  env.engine->set_page_observer([&](int64_t, int64_t n, const Page<Meeting>&) {
    if (n == 2) sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
  });
  auto job = env.engine->backfill(id);
  BOOST_REQUIRE_MESSAGE(job.ok(), job.status());
  BOOST_TEST(job->status == "succeeded", job->message);
  BOOST_TEST(job->tenant_id == "tenant-a");
  nlohmann::json listing = sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com");
  BOOST_TEST(env.store->count(id).value() == static_cast<int64_t>(listing["items"].size()));
  nlohmann::json c = sim.counters();
  BOOST_TEST(c["token_requests"]["refresh_token"].get<int>() == 1);
  BOOST_TEST(c["api_statuses"].value("401", 0) == 1);
  BOOST_TEST(integrations.get(id)->last_sync_at > 0);  // record_sync reached the real store

  // The user revokes access in Fathom: the next sync learns it (one 401, one failed refresh)...
  env.engine->set_page_observer(nullptr);
  sim.admin("POST", "/_sim/grants/revoke", {{"user", "alice@example.com"}});
  auto revoked = env.engine->incremental(id);
  BOOST_REQUIRE(revoked.ok());
  BOOST_TEST(revoked->status == "failed");
  BOOST_TEST(revoked->error_code == "reconnect_required");
  BOOST_TEST(integrations.get(id)->status == "reconnect_required");
  // ...and the one after that is skipped without a single call.
  sim.admin("POST", "/_sim/counters/reset");
  auto skipped = env.engine->incremental(id);
  BOOST_REQUIRE(skipped.ok());
  BOOST_TEST(skipped->status == "skipped");
  BOOST_TEST(sim.counters()["api_calls_total"].get<int>() == 0);
  BOOST_TEST(sim.counters()["token_requests_total"].get<int>() == 0);
}
