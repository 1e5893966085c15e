// Webhooks against fathom-sim: registration through the real API client (POST/DELETE /webhooks),
// the simulator's signed deliveries over loopback into the built-in HTTP server, processing into
// the meetings store and the pipeline, and every sender switch (wrong signature, tampered body,
// stale and future timestamps, two signatures, svix headers, duplicate delivery).
#define BOOST_TEST_MODULE fb_webhooks_sim
#include <boost/test/unit_test.hpp>
#include <mutex>
#include <set>

#include "crypto/encoding.h"
#include "fathom/fathom_client.h"
#include "fixture.h"
#include "http/http_client.h"
#include "server/http_server.h"
#include "server/webhook_routes.h"
#include "support/sim_process.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/meeting_handler.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;
using nlohmann::json;

namespace {

constexpr int64_t kIntegration = 1;

class ApiKeySource final : public CredentialSource {
 public:
  explicit ApiKeySource(std::string key) : key_(std::move(key)) {}
  Result<Credential> credential(int64_t) override { return Credential{Credential::Kind::kApiKey, SecretString(key_), 1}; }
  Result<Credential> refresh_after_unauthorized(int64_t, const Credential&) override {
    return Status::Unauthenticated("API key rejected");
  }

 private:
  std::string key_;
};

class AliceDirectory final : public IntegrationDirectory {
 public:
  std::vector<IntegrationInfo> list_active() override { return {info()}; }
  Result<IntegrationInfo> get(int64_t id) override {
    if (id != kIntegration) return Status::NotFound("no integration");
    return info();
  }
  Status record_sync(int64_t, int64_t) override { return Status::Ok(); }
  static IntegrationInfo info() {
    IntegrationInfo i;
    i.id = kIntegration;
    i.tenant_id = "acme";
    i.user_id = "u-alice";
    i.kind = "api_key";
    i.status = "active";
    i.active = true;
    return i;
  }
};

// Records what reaches the pipeline.
class RecordingPipeline final : public MeetingPipeline {
 public:
  Status on_meeting(const MeetingEvent& e) override {
    std::lock_guard lk(mu_);
    mapped_.push_back(e.recording_id);
    return Status::Ok();
  }
  Status on_webhook(const MeetingEvent& e) override {
    std::lock_guard lk(mu_);
    reactions_.push_back(e.recording_id);
    if (e.source != "webhook" || e.tenant_id != "acme" || e.raw_json.find("recording_id") == std::string_view::npos) {
      bad_ = true;
    }
    return Status::Ok();
  }
  int reactions_for(int64_t id) {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count(reactions_.begin(), reactions_.end(), id));
  }
  int mapped_for(int64_t id) {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count(mapped_.begin(), mapped_.end(), id));
  }
  size_t reactions() {
    std::lock_guard lk(mu_);
    return reactions_.size();
  }
  bool bad() {
    std::lock_guard lk(mu_);
    return bad_;
  }

 private:
  std::mutex mu_;
  std::vector<int64_t> mapped_, reactions_;
  bool bad_ = false;
};

// The whole receiving side of the bridge, wired as the facade does it.
struct Bridge {
  Bridge() : sim({"--webhook-retry-scale", "0.001"}) {
    server = std::make_unique<HttpServer>(server_options());
    BOOST_REQUIRE(server->bind().ok());
    config.webhooks.public_base_url = "http://127.0.0.1:" + std::to_string(server->port());
    config.webhooks.triggered_for = {"my_recordings", "shared_team_recordings"};
    config.webhooks.include_crm_matches = true;
    stack = std::make_unique<WebhookStack>(clock, config);
    key = std::make_unique<ApiKeySource>(sim.api_key("alice@example.com"));
    limiters = std::make_unique<RateLimiterRegistry>(clock);
    FathomClientOptions fo;
    fo.api_base = sim.api_base();
    client = std::make_unique<FathomClient>(transport, *key, *limiters, clock, fo);
    registry = std::make_unique<Registry>(*stack->db, stack->sealer, clock, system_random(), config.webhooks,
                                          client.get());
    receiver = std::make_unique<Receiver>(*registry, *stack->inbox, clock, config.webhooks);
    auto st = MeetingStore::open(*stack->db, clock);
    BOOST_REQUIRE(st.ok());
    store = std::move(*st);
    auto d = MeetingDispatcher::open(*stack->db, clock);
    BOOST_REQUIRE(d.ok());
    dispatcher = std::move(*d);
    store->set_content_loader(inbox_content_loader(*stack->inbox));
    dispatcher->set_content_loader(inbox_content_loader(*stack->inbox));
    handler = std::make_unique<MeetingEventHandler>(*store, *dispatcher, directory, pipeline);
    WorkerOptions wo = WorkerOptions::from(config.webhooks);
    wo.backoff_base_ms = 20;
    workers = std::make_unique<WorkerPool>(*stack->inbox, *handler, clock, system_random(), wo);
    BOOST_REQUIRE(workers->start().ok());
    mount_webhook_routes(*server, *receiver);
    BOOST_REQUIRE(server->start().ok());
  }
  ~Bridge() {
    server->stop();
    workers->stop();
  }
  static HttpServerOptions server_options() {
    HttpServerOptions o;
    o.port = 0;
    o.threads = 8;
    return o;
  }

  // A new meeting of alice's, completed now: the simulator delivers it. Returns its recording id.
  int64_t complete_new_meeting() {
    json r = sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}});
    int64_t id = r["recording_ids"][0].get<int64_t>();
    sim.admin("POST", "/_sim/meetings/" + std::to_string(id) + "/complete", json::object());
    return id;
  }
  // The simulator's delivery attempts of one recording.
  std::vector<json> attempts(int64_t recording_id) {
    std::vector<json> out;
    json counters = sim.counters();  // the loop must not run over a member of a temporary
    for (const json& d : counters["webhook_deliveries"]) {
      if (d.value("recording_id", int64_t{0}) == recording_id) out.push_back(d);
    }
    return out;
  }
  bool sender_idle() { return sim.counters().value("webhook_pending", 1) == 0; }
  int64_t rejected(Rejection r) { return receiver->stats().rejected[static_cast<size_t>(r)]; }

  SimProcess sim;
  SystemClock clock;
  Config config;
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<WebhookStack> stack;
  HttplibTransport transport;
  std::unique_ptr<ApiKeySource> key;
  std::unique_ptr<RateLimiterRegistry> limiters;
  std::unique_ptr<FathomClient> client;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<Receiver> receiver;
  std::unique_ptr<MeetingStore> store;
  std::unique_ptr<MeetingDispatcher> dispatcher;
  AliceDirectory directory;
  RecordingPipeline pipeline;
  std::unique_ptr<MeetingEventHandler> handler;
  std::unique_ptr<WorkerPool> workers;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(with_fathom_sim)

BOOST_AUTO_TEST_CASE(register_receive_process_and_unregister) {
  Bridge b;
  // Connect: the webhook is created at Fathom with the configured flags and our own path.
  auto reg = b.registry->register_for(kIntegration);
  BOOST_REQUIRE_MESSAGE(reg.ok(), reg.status());
  BOOST_TEST(reg->source == "api");
  BOOST_TEST(!reg->fathom_webhook_id.empty());
  BOOST_TEST(reg->destination_url == b.config.webhooks.public_base_url + "/webhooks/fathom/" + reg->path_token);
  json hooks = b.sim.admin("GET", "/_sim/webhooks");
  json items = hooks.is_array() ? hooks : hooks["webhooks"];
  BOOST_REQUIRE(items.size() == 1u);
  const json& h = items[0];
  BOOST_TEST(h["id"].get<std::string>() == reg->fathom_webhook_id);
  BOOST_TEST(h["url"].get<std::string>() == reg->destination_url);
  BOOST_TEST((h["triggered_for"] == json({"my_recordings", "shared_team_recordings"})));
  BOOST_TEST(h["include_transcript"].get<bool>());
  BOOST_TEST(h["include_summary"].get<bool>());
  BOOST_TEST(h["include_action_items"].get<bool>());
  BOOST_TEST(h["include_crm_matches"].get<bool>());
  BOOST_TEST(b.sim.counters()["api_calls"].value("POST /webhooks", 0) == 1);

  // Its secret is stored sealed: neither the text nor the key bytes are in the database file.
  std::string secret = h["secret"].get<std::string>();
  BOOST_REQUIRE(secret.rfind("whsec_", 0) == 0);
  std::string file = stored_bytes(b.stack->db->path());
  BOOST_TEST(file.find(reg->path_token) != std::string::npos);  // the row is there...
  BOOST_TEST(file.find(secret.substr(6)) == std::string::npos);  // ...the secret is not
  BOOST_TEST(file.find(*base64_decode(secret.substr(6))) == std::string::npos);

  // A completed meeting is delivered, verified, stored, mapped and reacted to.
  int64_t api_before = b.sim.counters()["api_calls_total"].get<int64_t>();
  int64_t rec = b.complete_new_meeting();
  BOOST_REQUIRE(wait_until([&] { return b.pipeline.reactions_for(rec) == 1; }));
  BOOST_TEST(b.pipeline.mapped_for(rec) == 1);
  BOOST_TEST(!b.pipeline.bad());
  // The hooks run inside the worker's batch, whose meeting rows commit with it: read them once the
  // event is done (on PostgreSQL another connection does not see them earlier).
  BOOST_REQUIRE(wait_until([&] { return b.stack->inbox->list({"done", kIntegration, 10})->size() == 1u; }));
  auto stored = b.store->get(kIntegration, rec);
  BOOST_REQUIRE(stored.ok());
  BOOST_TEST(stored->last_source == "webhook");
  // The payload's transcript and summary filled the cache: no API call was needed for them.
  BOOST_TEST(b.store->cached_content(kIntegration, rec, ContentKind::kTranscript)->has_value());
  BOOST_TEST(b.store->cached_content(kIntegration, rec, ContentKind::kSummary)->has_value());
  BOOST_TEST(b.sim.counters()["api_calls_total"].get<int64_t>() == api_before);
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return b.sender_idle() && !b.attempts(rec).empty(); }),
                        rec << " " << b.sim.counters().dump());
  auto att = b.attempts(rec);
  BOOST_REQUIRE_MESSAGE(att.size() == 1u, json(att).dump());
  BOOST_TEST(att[0]["status"].get<int>() == 200);
  auto events = b.stack->inbox->list({"done", kIntegration, 10});
  BOOST_REQUIRE(events->size() == 1u);
  BOOST_TEST(events->at(0).webhook_id == att[0]["message_id"].get<std::string>());

  // Disconnect: deleted at Fathom and locally; later deliveries have nowhere to go.
  BOOST_REQUIRE(b.registry->unregister_all(kIntegration).ok());
  BOOST_TEST(b.sim.counters()["api_calls"].value("DELETE /webhooks/{id}", 0) == 1);
  json after = b.sim.admin("GET", "/_sim/webhooks");
  BOOST_TEST((after.is_array() ? after : after["webhooks"]).empty());
  BOOST_TEST(b.registry->list(kIntegration)->empty());
  BOOST_TEST(b.receiver->handle("/webhooks/fathom/" + reg->path_token, HeaderList{}, "{}").http_status == 404);
}

BOOST_AUTO_TEST_CASE(forged_and_late_deliveries_are_refused_and_store_nothing) {
  Bridge b;
  BOOST_REQUIRE(b.registry->register_for(kIntegration).ok());
  b.sim.config({{"webhook_max_attempts", 1}});  // one attempt each: a retry would be a new question
  struct Switch {
    json knobs;
    int status;
    Rejection rejection;
  };
  std::vector<Switch> switches = {
      {{{"webhook_wrong_signature", true}}, 401, Rejection::kBadSignature},
      {{{"webhook_tamper_body", true}}, 401, Rejection::kBadSignature},
      {{{"webhook_timestamp_offset_s", -600}}, 401, Rejection::kStaleTimestamp},
      {{{"webhook_timestamp_offset_s", 600}}, 401, Rejection::kFutureTimestamp},
  };
  for (const Switch& s : switches) {
    b.sim.config(s.knobs);
    int64_t before = b.rejected(s.rejection);
    int64_t rec = b.complete_new_meeting();
    BOOST_REQUIRE_MESSAGE(wait_until([&] { return b.attempts(rec).size() == 1u && b.sender_idle(); }),
                          s.knobs.dump() << " " << json(b.attempts(rec)).dump() << " pending "
                                         << b.sim.counters().value("webhook_pending", -1));
    BOOST_TEST(b.attempts(rec)[0]["status"].get<int>() == s.status, s.knobs.dump());
    BOOST_TEST(b.rejected(s.rejection) == before + 1, s.knobs.dump());
    BOOST_TEST(b.stack->inbox_rows() == 0, s.knobs.dump() << ": something was stored");
    BOOST_TEST((b.store->get(kIntegration, rec).code() == Code::kNotFound), s.knobs.dump());
    // Switch it off again.
    json off = s.knobs;
    for (auto& [k, v] : off.items()) v = v.is_boolean() ? json(false) : json(0);
    b.sim.config(off);
  }
  BOOST_TEST(b.pipeline.reactions() == 0u);
}

BOOST_AUTO_TEST_CASE(rotation_signatures_svix_headers_and_duplicates) {
  Bridge b;
  BOOST_REQUIRE(b.registry->register_for(kIntegration).ok());

  // Two signatures, as during a secret rotation: ours is one of them.
  b.sim.config({{"webhook_two_signatures", true}});
  int64_t r1 = b.complete_new_meeting();
  BOOST_REQUIRE(wait_until([&] { return b.pipeline.reactions_for(r1) == 1; }));
  b.sim.config({{"webhook_two_signatures", false}});

  // svix-* headers beside the webhook-* ones.
  b.sim.config({{"webhook_svix_headers", true}});
  int64_t r2 = b.complete_new_meeting();
  BOOST_REQUIRE(wait_until([&] { return b.pipeline.reactions_for(r2) == 1; }));
  b.sim.config({{"webhook_svix_headers", false}});

  // The sender delivers a succeeded message again (same webhook-id): acknowledged, processed once.
  b.sim.config({{"webhook_duplicate", true}});
  int64_t r3 = b.complete_new_meeting();
  BOOST_REQUIRE(wait_until([&] { return b.attempts(r3).size() == 2u && b.sender_idle(); }));
  auto att = b.attempts(r3);
  BOOST_TEST(att[0]["message_id"] == att[1]["message_id"]);
  BOOST_TEST(att[0]["status"].get<int>() == 200);
  BOOST_TEST(att[1]["status"].get<int>() == 200);
  BOOST_REQUIRE(wait_until([&] { return b.pipeline.reactions_for(r3) >= 1; }));
  BOOST_TEST(wait_until([&] { return b.stack->inbox->list({"done", 0, 10})->size() == 3u; }));
  BOOST_TEST(b.pipeline.reactions_for(r3) == 1);
  BOOST_TEST(b.pipeline.mapped_for(r3) == 1);
  BOOST_TEST(b.receiver->stats().duplicates == 1);
  BOOST_TEST(b.stack->inbox_rows() == 3);
}

BOOST_AUTO_TEST_CASE(registration_needs_a_public_url_and_reports_fathom_errors) {
  Bridge b;
  Config no_url;
  Registry bare(*b.stack->db, b.stack->sealer, b.clock, system_random(), no_url.webhooks, b.client.get());
  auto r = bare.register_for(kIntegration);
  BOOST_TEST((r.code() == Code::kFailedPrecondition));
  BOOST_TEST(r.status().message().find("public_base_url") != std::string::npos);
  // Fathom refuses the call: the error comes back and nothing is stored.
  b.sim.admin("POST", "/_sim/faults", {{"status", 500}, {"count", 10}, {"path_prefix", "/external/v1/webhooks"}});
  auto failed = b.registry->register_for(kIntegration);
  BOOST_TEST(!failed.ok());
  BOOST_TEST(b.registry->list(kIntegration)->empty());
  b.sim.admin("DELETE", "/_sim/faults");
  // Unregistering when Fathom already forgot the webhook (404) still removes it locally.
  auto reg = b.registry->register_for(kIntegration);
  BOOST_REQUIRE(reg.ok());
  BOOST_REQUIRE(b.client->delete_webhook(kIntegration, reg->fathom_webhook_id).ok());
  BOOST_TEST(b.registry->unregister_all(kIntegration).ok());
  BOOST_TEST(b.registry->list(kIntegration)->empty());
}

BOOST_AUTO_TEST_SUITE_END()
