// fixture.h: a webhook stack over a real store for the webhook tests: a SQLite file in a temp dir,
// or, in the suites' "_postgresql" runs, a database of its own on the throwaway PostgreSQL
// (TempDir::store).
#pragma once

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/random.h"
#include "crypto/sealer.h"
#include "store/db.h"
#include "support/log_capture.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "webhooks/inbox.h"
#include "webhooks/receiver.h"
#include "webhooks/registry.h"
#include "webhooks/schema.h"
#include "webhooks/verifier.h"

namespace fb::test {

using detail::SecretString;

// The synthetic Fathom-style vector's secret (fathom-api.md 5.3): bytes 0x01..0x18.
inline const char* kSecretA = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
// Another valid secret (24 bytes), for "wrong secret" and rotation.
inline const char* kSecretB = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// A test case about SQLite itself (its files, WAL, body log, locks): skipped on PostgreSQL runs.
// Use: BOOST_AUTO_TEST_CASE(name, *boost::unit_test::precondition(sqlite_only)).
inline boost::test_tools::assertion_result sqlite_only(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!store_engine_is_postgres());
  r.message() << "about SQLite's files (this run is on PostgreSQL)";
  return r;
}

inline std::string meeting_body(int64_t recording_id, const std::string& title = "Weekly sync") {
  return R"({"title":")" + title + R"(","meeting_title":null,"recording_id":)" + std::to_string(recording_id) +
         R"(,"url":"https://fathom.video/calls/)" + std::to_string(recording_id) +
         R"(","share_url":"https://fathom.video/share/x","created_at":"2025-03-01T17:01:30Z",)"
         R"("recorded_by":{"name":"Alice","email":"alice@example.com","email_domain":"example.com","team":"Sales"},)"
         R"("calendar_invitees":[],"transcript":[{"speaker":{"display_name":"Alice",)"
         R"("matched_calendar_invitee_email":"alice@example.com"},"text":"Hello","timestamp":"00:00:01"}]})";
}

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Headers of a delivery signed with secret at unix time ts.
inline HeaderList signed_headers(const char* secret, const std::string& id, int64_t ts, const std::string& body) {
  auto key = detail::SigningKey::from_secret(SecretString(secret));
  BOOST_REQUIRE(key.ok());
  std::string t = std::to_string(ts);
  return {{"webhook-id", id}, {"webhook-timestamp", t}, {"webhook-signature", key->sign(id, t, body)},
          {"Content-Type", "application/json"}};
}

inline int64_t scalar(detail::Db& db, const std::string& sql) {
  int64_t v = -1;
  BOOST_REQUIRE(db.with([&]() -> Status {
                    auto st = db.prepare_uncached(sql);
                    if (!st.ok()) return st.status();
                    auto r = st->step();
                    if (!r.ok()) return r.status();
                    v = *r ? st->int64(0) : -1;
                    return Status::Ok();
                  }).ok());
  return v;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls cond every 10 ms until it holds or timeout_s passes.
inline bool wait_until(const std::function<bool()>& cond, double timeout_s = 10) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

inline void add_test_key(detail::Sealer& sealer) {
  BOOST_REQUIRE(sealer.add_key("t1", SecretString(std::string(32, '\x42'))).ok());
}

// Db + registry + inbox + receiver over a fresh store (TempDir::store).
struct WebhookStack {
  explicit WebhookStack(detail::Clock& clk, Config cfg = Config()) : clock(clk), config(std::move(cfg)) {
    auto opened = detail::Db::open(dir.store("bridge.db"));
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status());
    db = std::move(*opened);
    BOOST_REQUIRE(detail::migrate_webhooks(*db).ok());
    add_test_key(sealer);
    registry = std::make_unique<detail::Registry>(*db, sealer, clock, detail::system_random(), config.webhooks);
    detail::InboxOptions io;
    io.commit_timeout_ms = config.webhooks.commit_timeout_ms;
    inbox = std::make_unique<detail::Inbox>(*db, clock, io);
    receiver = std::make_unique<detail::Receiver>(*registry, *inbox, clock, config.webhooks);
  }

  // A manual registration of integration_id with secret; returns its receiving path.
  std::string add_endpoint(int64_t integration_id, const char* secret, int64_t* registration_id = nullptr) {
    auto reg = registry->add_manual(integration_id, SecretString(secret));
    BOOST_REQUIRE_MESSAGE(reg.ok(), reg.status());
    if (registration_id) *registration_id = reg->id;
    return registry->path_for(reg->path_token);
  }

  int64_t inbox_rows() { return scalar(*db, "SELECT COUNT(*) FROM webhook_inbox"); }

  TempDir dir;
  detail::Clock& clock;
  Config config;
  std::unique_ptr<detail::Db> db;
  detail::Sealer sealer;
  std::unique_ptr<detail::Registry> registry;
  std::unique_ptr<detail::Inbox> inbox;
  std::unique_ptr<detail::Receiver> receiver;
};

}  // namespace fb::test
