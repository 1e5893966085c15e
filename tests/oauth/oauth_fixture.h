// oauth_fixture.h: one "bridge instance" of the oauth layer for tests (Db connection, sealer,
// store, token endpoint, flow, token manager, event bus), plus helpers to drive fathom-sim's
// consent page the way a browser would.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/event_bus.h"
#include "crypto/encoding.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"
#include "oauth/oauth_flow.h"
#include "oauth/token_endpoint.h"
#include "oauth/token_health.h"
#include "oauth/token_manager.h"
#include "store/db.h"

namespace fb::test {

inline const char* kRedirectUri = "http://127.0.0.1:8787/oauth/callback";
inline const char* kFrontendUrl = "https://crm.example.test";

inline std::string test_key(char fill) { return fb::detail::base64_encode(std::string(32, fill)); }

// A Config pointing at `base` (e.g. a SimProcess's base_url()) with fast, test-sized timings.
inline Config oauth_test_config(const std::string& base, const std::string& client_secret = "sim-secret") {
  Config c;
  c.fathom.client_id = "sim-client";
  c.fathom.client_secret = client_secret;
  c.fathom.redirect_uri = kRedirectUri;
  c.fathom.authorize_url = base + "/external/v1/oauth2/authorize";
  c.fathom.token_url = base + "/external/v1/oauth2/token";
  c.fathom.api_base = base + "/external/v1";
  c.frontend.url = kFrontendUrl;
  c.tokens.key = "k1:" + test_key('a');
  c.tokens.refresh_backoff_base_ms = 20;
  c.tokens.refresh_backoff_max_ms = 200;
  c.tokens.refresh_max_attempts = 3;
  return c;
}

// Everything one process of a host would hold. Each instance has its own Db connection.
struct OAuthStack {
  OAuthStack(const std::string& db_path, const Config& config, detail::HttpTransport& transport,
             detail::Clock& clock = detail::system_clock(), detail::Random& random = detail::system_random())
      : config_(config), clock_(clock) {
    auto d = detail::Db::open(db_path);
    if (!d.ok()) throw std::runtime_error("open db: " + d.status().to_string());
    db = std::move(d).value();
    auto s = detail::make_sealer(config.tokens, random);
    if (!s.ok()) throw std::runtime_error("sealer: " + s.status().to_string());
    sealer = std::move(s).value();
    store = std::make_unique<detail::IntegrationStore>(*db, *sealer, clock);
    Status m = store->migrate();
    if (!m.ok()) throw std::runtime_error("migrate: " + m.to_string());
    endpoint = std::make_unique<detail::TokenEndpoint>(transport, clock, random,
                                                       detail::TokenEndpointOptions::from_config(config));
    bus.subscribe([this](const Event& e) {
      std::lock_guard lock(events_mu);
      events.push_back(e);
    });
    flow = std::make_unique<detail::OAuthFlow>(detail::OAuthFlowOptions::from_config(config), *store, *endpoint,
                                               transport, &bus, clock, random);
    tokens = std::make_unique<detail::TokenManager>(*store, *endpoint, &bus,
                                                    detail::TokenManagerOptions::from_config(config), clock, random);
    health = std::make_unique<detail::TokenHealthReporter>(*store, clock, config.tokens.refresh_buffer_s);
  }

  int count_events(const std::string& type) {
    std::lock_guard lock(events_mu);
    int n = 0;
    for (const auto& e : events) n += e.type == type;
    return n;
  }

  // Rows in a table of this database.
  int64_t count_rows(const std::string& table) {
    int64_t n = -1;
    Status s = db->with([&]() -> Status {
      auto q = db->prepare_uncached("SELECT COUNT(*) FROM " + table);
      if (!q.ok()) return q.status();
      auto r = q->step();
      if (!r.ok()) return r.status();
      n = q->int64(0);
      return Status::Ok();
    });
    if (!s.ok()) throw std::runtime_error("count: " + s.to_string());
    return n;
  }

  Config config_;
  detail::Clock& clock_;
  std::unique_ptr<detail::Db> db;
  std::unique_ptr<detail::Sealer> sealer;
  std::unique_ptr<detail::IntegrationStore> store;
  std::unique_ptr<detail::TokenEndpoint> endpoint;
  detail::EventBus bus;
  std::mutex events_mu;
  std::vector<Event> events;  // guarded by events_mu
  std::unique_ptr<detail::OAuthFlow> flow;
  std::unique_ptr<detail::TokenManager> tokens;
  std::unique_ptr<detail::TokenHealthReporter> health;
};

}  // namespace fb::test
