// Deliveries from a third-party sender: tests/interop/deliver.mjs signs with the official Standard
// Webhooks library (npm "standardwebhooks") and posts with Node's own HTTP client (keep-alive,
// a chunked body, svix-* names, a 1 MB transcript) to our HTTP server; the bodies in the inbox
// (the body log on SQLite, bytea in the rows on PostgreSQL: the _postgresql variant) must be byte
// for byte what Node sent. A strict peer's cases follow (deliver.mjs, over node:http): several
// signatures with unknown versions, header case, the tolerance both ways, malformed timestamps,
// zero-length and non-UTF-8 bodies, an over-long id, a reused id with another body. `./run test`
// installs the npm package.
#define BOOST_TEST_MODULE fb_webhooks_interop
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <boost/test/unit_test.hpp>

#include "crypto/encoding.h"
#include "fixture.h"
#include "server/http_server.h"
#include "server/webhook_routes.h"
#include "support/wait.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;
using nlohmann::json;

BOOST_AUTO_TEST_CASE(standard_webhooks_library_and_node_http_client) {
  const std::string dir = std::string(FB_SOURCE_DIR) + "/tests/interop";
  BOOST_REQUIRE_MESSAGE(std::ifstream(dir + "/node_modules/standardwebhooks/package.json").good(),
                        "tests/interop/node_modules is missing: ./run test installs it (npm ci in tests/interop)");
  SystemClock clock;
  WebhookStack stack(clock);
  // The production layout: on SQLite, bodies in the body log beside the database; on PostgreSQL
  // (fb_webhooks_interop_test_postgresql) in the inbox rows, as bytea.
  if (!store_engine_is_postgres()) {
    stack.receiver.reset();
    stack.inbox.reset();
    InboxOptions io;
    io.body_dir = default_body_dir(stack.dir.file("bridge.db"));
    stack.inbox = std::make_unique<Inbox>(*stack.db, clock, io);
    stack.receiver = std::make_unique<Receiver>(*stack.registry, *stack.inbox, clock, stack.config.webhooks);
  }
  const std::string path = stack.add_endpoint(21, kSecretA);
  HttpServerOptions so;
  so.port = 0;
  HttpServer server(so);
  mount_webhook_routes(server, *stack.receiver);
  BOOST_REQUIRE(server.start().ok());

  const int kCount = 30;
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + path;
  const std::string cmd = "cd '" + dir + "' && node deliver.mjs '" + url + "' " + kSecretA + " " + std::to_string(kCount);
  CommandResult run = run_command(cmd + " 2>&1");
  BOOST_REQUIRE_MESSAGE(run.exit_code == 0, cmd + " exited with " + std::to_string(run.exit_code) + ": " +
                                               run.output.substr(0, 500));
  const std::string& out = run.output;
  std::map<std::string, int> by_case;
  std::istringstream lines(out);
  std::string line;
  std::vector<json> accepted;
  std::vector<json> stored;  // the strict peer's deliveries that must be stored
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json r = json::parse(line);
    std::string kind = r["case"];
    ++by_case[kind];
    BOOST_TEST_CONTEXT(kind << " " << r["id"].get<std::string>()) {
      if (r.contains("expect")) {  // the strict peer's cases say what they expect
        BOOST_TEST(r["status"] == r["expect"]["status"]);
        if (r["expect"].contains("result")) BOOST_TEST(r["result"] == r["expect"]["result"]);
        if (r["expect"].contains("reason")) BOOST_TEST(r["reason"] == r["expect"]["reason"]);
        if (r.contains("stored_b64")) stored.push_back(r);
      } else if (kind == "tampered") {
        BOOST_TEST(r["status"] == 401);
        BOOST_TEST(r["reason"] == "bad signature");
      } else if (kind == "stale") {
        BOOST_TEST(r["status"] == 401);
        BOOST_TEST(r["reason"] == "stale timestamp");
      } else if (kind == "repeat") {
        BOOST_TEST(r["status"] == 200);
        BOOST_TEST(r["result"] == "duplicate");
      } else {
        BOOST_TEST(r["status"] == 200);
        BOOST_TEST(r["result"] == "accepted");
        accepted.push_back(r);
      }
    }
  }
  BOOST_TEST(by_case["keepalive"] == kCount);
  BOOST_TEST(by_case["svix"] == 1);
  BOOST_TEST(by_case["large"] == 1);
  BOOST_TEST(by_case["chunked"] == 1);
  BOOST_TEST(by_case["tampered"] == 1);
  BOOST_TEST(by_case["stale"] == 1);
  BOOST_REQUIRE_EQUAL(accepted.size(), static_cast<size_t>(kCount + 3));
  BOOST_TEST(by_case["peer_multi"] == 1);  // the strict peer ran (19 cases)
  BOOST_TEST(by_case["peer_same_id_other_body"] == 1);
  BOOST_TEST(stored.size() == 5u);
  BOOST_TEST(stack.inbox_rows() == static_cast<int64_t>(accepted.size() + stored.size()));  // rejections stored nothing

  // Every stored body is byte for byte what Node signed and sent.
  InboxFilter all;
  all.limit = 1000;
  auto events = stack.inbox->list(all);
  BOOST_REQUIRE(events.ok());
  std::map<std::string, int64_t> ids;
  for (const auto& e : *events) ids[e.webhook_id] = e.id;
  for (const json& r : accepted) {
    const std::string id = r["id"];
    BOOST_REQUIRE_MESSAGE(ids.count(id), "not in the inbox: " + id);
    auto e = stack.inbox->get(ids[id], true);
    BOOST_REQUIRE(e.ok());
    BOOST_TEST(e->body == r["body"].get<std::string>(), id);
  }
  // The strict peer's stored deliveries hold the bytes it signed (the first body for the reused id).
  for (const json& r : stored) {
    const std::string id = r["id"];
    BOOST_REQUIRE_MESSAGE(ids.count(id), "not in the inbox: " + id);
    auto e = stack.inbox->get(ids[id], true);
    BOOST_REQUIRE(e.ok());
    BOOST_TEST(e->body == *base64_decode(r["stored_b64"].get<std::string>()), id);
  }
  server.stop();
}
