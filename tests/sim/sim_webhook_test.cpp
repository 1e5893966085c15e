// The webhook sender of fathom-sim (fathom-api.md 5 and 7 items 16-19), checked by a verifier
// written here from the Standard Webhooks spec with OpenSSL directly (not the simulator's code).
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/test/unit_test.hpp>
#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "sim/sim_sender.h"
#include "sim/sim_signing.h"
#include "sim/sim_test_util.h"
#include "support/webhook_receiver.h"

using namespace fb::simtest;
using fb::test::http_post_json;
using fb::test::ReceivedRequest;
using fb::test::WebhookReceiver;
using nlohmann::json;

namespace {

std::string b64encode(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string b64decode(const std::string& text) {
  std::string out(3 * text.size() / 4 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return {};
  size_t pad = 0;
  while (pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string expected_signature(const std::string& secret, const std::string& id, const std::string& ts, const std::string& body) {
  std::string key = b64decode(secret.substr(6));
  std::string msg = id + "." + ts + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
       mac, &len);
  return b64encode(std::string(reinterpret_cast<char*>(mac), len));
}

// Standard Webhooks verification (fathom-api.md 5.3, steps 1-6). Returns "" when valid.
std::string verify(const std::string& secret, const std::string& id, const std::string& ts, const std::string& sig_header,
                   const std::string& body, int64_t now_s) {
  if (id.empty() || ts.empty() || sig_header.empty()) return "missing header";
  int64_t t = std::stoll(ts);
  if (t < now_s - 300) return "too old";
  if (t > now_s + 300) return "too new";
  std::string want = expected_signature(secret, id, ts, body);
  std::istringstream entries(sig_header);
  std::string entry;
  while (entries >> entry) {
    size_t comma = entry.find(',');
    if (comma == std::string::npos || entry.substr(0, comma) != "v1") continue;
    if (CRYPTO_memcmp(entry.data() + comma + 1, want.data(), want.size()) == 0 && entry.size() - comma - 1 == want.size()) {
      return {};
    }
  }
  return "no matching signature";
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string verify(const std::string& secret, const ReceivedRequest& r) {
  return verify(secret, r.header("webhook-id"), r.header("webhook-timestamp"), r.header("webhook-signature"), r.body, now_s());
}

struct Hook {
  std::string id;
  std::string secret;
};

Hook add_webhook(const SimProcess& sim, const std::string& user, const std::string& url, json extra = json::object()) {
  json body = {{"destination_url", url}, {"triggered_for", {"my_recordings"}}, {"include_summary", true},
               {"include_action_items", true}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  HttpReply r = http_post_json(sim.api_base() + "/webhooks", body, key_auth(sim, user));
  if (r.status != 201) throw std::runtime_error("create webhook: " + r.body);
  return {r.json()["id"], r.json()["secret"]};
}

int64_t new_meeting(const SimProcess& sim, const std::string& user) {
  return sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", user}})["recording_ids"][0];
}

json complete(const SimProcess& sim, int64_t id) {
  return sim.admin("POST", "/_sim/meetings/" + std::to_string(id) + "/complete");
}

bool idle(const SimProcess& sim) { return sim.counters()["webhook_pending"] == 0; }

}  // namespace

BOOST_AUTO_TEST_SUITE(webhooks)

BOOST_AUTO_TEST_CASE(signing_matches_the_two_vectors_of_fathom_api_5_3) {
  struct Vector {
    const char *secret, *id;
    int64_t ts;
    const char *body, *expected;
  } vectors[] = {
      {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232314}",
       "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
      {"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY", "msg_2SyntheticExampleId000001", 1740848520,
       "{\"recording_id\":123456789,\"title\":\"Vector test\"}", "v1,6z0X8Q5GLN0fMq+UIIPAz9mJFTLGedv6XItPDDke9vI="},
  };
  for (const auto& v : vectors) {
    BOOST_TEST(fb::sim::sign_webhook(v.secret, v.id, v.ts, v.body) == v.expected);
    // The test's own verifier agrees on the vectors (so it is fit to judge the deliveries below).
    BOOST_TEST(verify(v.secret, v.id, std::to_string(v.ts), v.expected, v.body, v.ts) == "");
    BOOST_TEST(verify(v.secret, v.id, std::to_string(v.ts), v.expected, std::string(v.body) + " ", v.ts) != "");
  }
  BOOST_TEST(fb::sim::sign_webhook("no-prefix", "msg_x", 1, "{}").empty());
  std::string secret = fb::sim::new_webhook_secret();
  BOOST_TEST(b64decode(secret.substr(6)).size() == 24u);
  BOOST_TEST(fb::sim::new_message_id().rfind("msg_", 0) == 0);
}

BOOST_AUTO_TEST_CASE(completed_meeting_is_delivered_signed_with_the_webhooks_includes) {
  SimProcess sim;
  WebhookReceiver rx;
  Hook hook = add_webhook(sim, "alice@example.com", rx.url("/hooks/fathom"));
  int64_t id = new_meeting(sim, "alice@example.com");
  json answer = complete(sim, id);
  BOOST_TEST(answer["deliveries"].size() == 1u);
  BOOST_REQUIRE(rx.wait_for(1, 10));
  ReceivedRequest r = rx.requests()[0];
  BOOST_TEST(r.method == "POST");
  BOOST_TEST(r.path == "/hooks/fathom");
  BOOST_TEST(r.header("Content-Type") == "application/json");
  BOOST_TEST(r.header("User-Agent").rfind("Svix-Webhooks/", 0) == 0);
  BOOST_TEST(r.header("webhook-id").rfind("msg_", 0) == 0);
  BOOST_TEST(r.header("webhook-id") == answer["deliveries"][0]["message_id"]);
  BOOST_TEST(r.header("webhook-signature").rfind("v1,", 0) == 0);
  BOOST_TEST(!r.headers.count("svix-id"));
  BOOST_TEST(verify(hook.secret, r) == "");

  json body = json::parse(r.body);
  BOOST_TEST(body["recording_id"] == id);
  BOOST_TEST(!body.contains("items"));  // the Meeting itself, no envelope
  BOOST_TEST(body.contains("default_summary"));
  BOOST_TEST(body.contains("action_items"));
  BOOST_TEST(!body.contains("transcript"));
  BOOST_TEST(!body.contains("crm_matches"));
  json full = sim.admin("GET", "/_sim/meetings/" + std::to_string(id));
  BOOST_TEST(body["default_summary"] == full["default_summary"]);
  BOOST_TEST(body["title"] == full["title"]);

  BOOST_TEST(wait_until([&] { return idle(sim); }));
  json deliveries = sim.counters()["webhook_deliveries"];
  BOOST_REQUIRE_EQUAL(deliveries.size(), 1u);
  BOOST_TEST(deliveries[0]["message_id"] == r.header("webhook-id"));
  BOOST_TEST(deliveries[0]["webhook_id"] == hook.id);
  BOOST_TEST(deliveries[0]["attempt"] == 1);
  BOOST_TEST(deliveries[0]["status"] == 204);
  BOOST_TEST(deliveries[0]["ok"] == true);
}

BOOST_AUTO_TEST_CASE(triggered_for_selects_the_webhooks) {
  SimProcess sim;
  WebhookReceiver rx;
  add_webhook(sim, "alice@example.com", rx.url("/alice"));
  add_webhook(sim, "bob@example.com", rx.url("/bob"), {{"triggered_for", {"shared_team_recordings"}}});
  add_webhook(sim, "carol@example.com", rx.url("/carol"), {{"triggered_for", {"my_recordings", "shared_team_recordings"}}});
  add_webhook(sim, "carol@example.com", rx.url("/carol-ext"), {{"triggered_for", {"shared_external_recordings"}}});
  complete(sim, new_meeting(sim, "alice@example.com"));  // alice's own + bob's teammate view
  BOOST_REQUIRE(rx.wait_for(2, 10));
  complete(sim, new_meeting(sim, "bob@example.com"));    // neither alice (my only) nor bob (team only) fire
  complete(sim, new_meeting(sim, "carol@example.com"));  // carol's own
  BOOST_REQUIRE(rx.wait_for(3, 10));
  BOOST_TEST(wait_until([&] { return idle(sim); }));
  std::multiset<std::string> paths;
  for (const auto& r : rx.requests()) paths.insert(r.path);
  BOOST_TEST((paths == std::multiset<std::string>{"/alice", "/bob", "/carol"}));
}

BOOST_AUTO_TEST_CASE(failed_deliveries_are_retried_with_the_same_webhook_id) {
  SimProcess sim({"--webhook-retry-scale", "0.001"});
  WebhookReceiver rx;
  rx.fail_next(3, 500);
  Hook hook = add_webhook(sim, "bob@example.com", rx.url("/h"));
  complete(sim, new_meeting(sim, "bob@example.com"));
  BOOST_REQUIRE(rx.wait_for(4, 20));  // 0 s, 5 ms, 300 ms, 1.8 s (scaled)
  BOOST_TEST(wait_until([&] { return idle(sim); }));
  auto got = rx.requests();
  BOOST_REQUIRE_EQUAL(got.size(), 4u);
  for (const auto& r : got) {
    BOOST_TEST(r.header("webhook-id") == got[0].header("webhook-id"));
    BOOST_TEST(r.body == got[0].body);
    BOOST_TEST(verify(hook.secret, r) == "");  // each attempt is signed over its own timestamp
  }
  BOOST_TEST(std::stoll(got[3].header("webhook-timestamp")) > std::stoll(got[0].header("webhook-timestamp")));
  json d = sim.counters()["webhook_deliveries"];
  BOOST_REQUIRE_EQUAL(d.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    BOOST_TEST(d[i]["attempt"] == i + 1);
    BOOST_TEST(d[i]["status"] == (i < 3 ? 500 : 204));
  }
}

BOOST_AUTO_TEST_CASE(retries_stop_after_max_attempts_and_timeouts_count_as_failures) {
  SimProcess sim({"--webhook-retry-scale", "0", "--webhook-max-attempts", "3", "--webhook-timeout", "0.3"});
  WebhookReceiver rx;
  rx.set_status(503);
  add_webhook(sim, "bob@example.com", rx.url("/h"));
  complete(sim, new_meeting(sim, "bob@example.com"));
  BOOST_REQUIRE(rx.wait_for(3, 10));
  BOOST_TEST(wait_until([&] { return idle(sim); }));
  BOOST_TEST(rx.count() == 3u);

  // A receiver slower than webhook_timeout_s: the attempt fails (status 0) and is retried.
  rx.clear();
  std::atomic<int> calls{0};
  rx.set_responder([&](const ReceivedRequest&) {
    if (calls++ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    return 200;
  });
  sim.admin("POST", "/_sim/counters/reset");
  complete(sim, new_meeting(sim, "bob@example.com"));
  BOOST_TEST(wait_until([&] {
    json d = sim.counters()["webhook_deliveries"];
    return d.size() == 2u && idle(sim);
  }));
  json d = sim.counters()["webhook_deliveries"];
  BOOST_TEST(d[0]["status"] == 0);
  BOOST_TEST(d[0]["ok"] == false);
  BOOST_TEST(d[1]["status"] == 200);
  BOOST_TEST(d[1]["message_id"] == d[0]["message_id"]);
}

BOOST_AUTO_TEST_CASE(duplicate_switch_redelivers_a_succeeded_message) {
  SimProcess sim({"--webhook-duplicate"});
  WebhookReceiver rx;
  Hook hook = add_webhook(sim, "alice@example.com", rx.url("/h"));
  complete(sim, new_meeting(sim, "alice@example.com"));
  BOOST_REQUIRE(rx.wait_for(2, 10));
  BOOST_TEST(wait_until([&] { return idle(sim); }));
  auto got = rx.requests();
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  BOOST_TEST(got[0].header("webhook-id") == got[1].header("webhook-id"));
  BOOST_TEST(verify(hook.secret, got[1]) == "");
  BOOST_TEST(sim.counters()["webhook_deliveries"][1]["duplicate"] == true);
}

BOOST_AUTO_TEST_CASE(signature_switches) {
  SimProcess sim;
  WebhookReceiver rx;
  Hook hook = add_webhook(sim, "alice@example.com", rx.url("/h"));
  auto deliver = [&](const json& knobs) {
    sim.config(knobs);
    rx.clear();
    complete(sim, new_meeting(sim, "alice@example.com"));
    BOOST_REQUIRE(rx.wait_for(1, 10));
    BOOST_REQUIRE(wait_until([&] { return idle(sim); }));
    return rx.requests()[0];
  };
  ReceivedRequest two = deliver({{"webhook_two_signatures", true}});
  std::string sig = two.header("webhook-signature");
  size_t space = sig.find(' ');
  BOOST_REQUIRE(space != std::string::npos);
  BOOST_TEST(verify(hook.secret, two) == "");  // any matching entry is enough
  BOOST_TEST(verify(hook.secret, two.header("webhook-id"), two.header("webhook-timestamp"), sig.substr(0, space), two.body,
                    now_s()) == "no matching signature");  // the rotated-out entry alone does not verify

  ReceivedRequest wrong = deliver({{"webhook_two_signatures", false}, {"webhook_wrong_signature", true}});
  BOOST_TEST(verify(hook.secret, wrong) == "no matching signature");

  ReceivedRequest stale = deliver({{"webhook_wrong_signature", false}, {"webhook_timestamp_offset_s", -600}});
  BOOST_TEST(verify(hook.secret, stale) == "too old");
  BOOST_TEST(verify(hook.secret, stale.header("webhook-id"), stale.header("webhook-timestamp"), stale.header("webhook-signature"),
                    stale.body, std::stoll(stale.header("webhook-timestamp"))) == "");  // signed over the stale value
  ReceivedRequest future = deliver({{"webhook_timestamp_offset_s", 600}});
  BOOST_TEST(verify(hook.secret, future) == "too new");

  ReceivedRequest tampered = deliver({{"webhook_timestamp_offset_s", 0}, {"webhook_tamper_body", true}});
  BOOST_TEST(verify(hook.secret, tampered) == "no matching signature");
  BOOST_TEST(tampered.body.find("[tampered]") != std::string::npos);

  ReceivedRequest svix = deliver({{"webhook_tamper_body", false}, {"webhook_svix_headers", true}});
  BOOST_TEST(verify(hook.secret, svix) == "");
  BOOST_TEST(svix.header("svix-id") == svix.header("webhook-id"));
  BOOST_TEST(svix.header("svix-timestamp") == svix.header("webhook-timestamp"));
  BOOST_TEST(svix.header("svix-signature") == svix.header("webhook-signature"));
}

BOOST_AUTO_TEST_CASE(non_loopback_destinations_are_refused_and_counted) {
  SimProcess sim;
  WebhookReceiver rx;
  add_webhook(sim, "alice@example.com", "https://crm.example.test/hooks/fathom");
  add_webhook(sim, "alice@example.com", "http://10.0.0.1/h");
  add_webhook(sim, "alice@example.com", rx.url("/ok"));
  complete(sim, new_meeting(sim, "alice@example.com"));
  BOOST_REQUIRE(rx.wait_for(1, 10));
  BOOST_TEST(wait_until([&] { return sim.counters()["webhook_refused"] == 2 && idle(sim); }));
  int refused = 0;
  json counters = sim.counters();
  for (const auto& d : counters["webhook_deliveries"]) refused += d["status"] == "refused";
  BOOST_TEST(refused == 2);
  BOOST_TEST(fb::sim::is_loopback_url("http://localhost:1/x"));
  BOOST_TEST(fb::sim::is_loopback_url("http://[::1]:8080/"));
  BOOST_TEST(!fb::sim::is_loopback_url("http://127.0.0.1.evil.test/"));
  BOOST_TEST(!fb::sim::is_loopback_url("http://user@127.0.0.1/"));
}

BOOST_AUTO_TEST_CASE(a_slow_receiver_does_not_block_the_admin_api) {
  SimProcess sim;
  WebhookReceiver rx;
  rx.set_delay_ms(1500);
  add_webhook(sim, "alice@example.com", rx.url("/slow"));
  complete(sim, new_meeting(sim, "alice@example.com"));
  // While the delivery hangs in the receiver, the admin and REST APIs keep answering.
  BOOST_TEST(wait_until([&] { return rx.count() == 0 && sim.counters()["webhook_pending"] == 1; }, 1));
  BOOST_TEST(api_get(sim, "/teams", key_auth(sim, "bob@example.com")).status == 200);
  BOOST_REQUIRE(rx.wait_for(1, 10));
  BOOST_TEST(wait_until([&] { return idle(sim); }));
  BOOST_TEST(sim.counters()["webhook_deliveries"][0]["ok"] == true);
}

BOOST_AUTO_TEST_CASE(add_meetings_with_complete_true_fires_webhooks) {
  SimProcess sim;
  WebhookReceiver rx;
  add_webhook(sim, "carol@example.com", rx.url("/c"));
  json ids = sim.admin("POST", "/_sim/meetings", {{"count", 3}, {"recorded_by", "carol@example.com"}, {"complete", true}});
  BOOST_REQUIRE(rx.wait_for(3, 10));
  std::set<int64_t> delivered;
  for (const auto& r : rx.requests()) delivered.insert(json::parse(r.body)["recording_id"].get<int64_t>());
  BOOST_TEST(delivered == ids["recording_ids"].get<std::set<int64_t>>());
}

BOOST_AUTO_TEST_SUITE_END()
