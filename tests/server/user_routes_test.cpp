// The routes a CRM's browser calls for its signed-in user (/fathom/*), over real parts: the real
// sidecar on loopback, fathom-sim for the OAuth grant and the meetings, a real SQLite file, and
// tokens made and signed by libjwt and OpenSSL the way a CRM backend would make them (HS256 with
// a shared secret; RS256 and ES256 with keys published in a JWKS file).
#define BOOST_TEST_MODULE fb_user_routes
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "scripting/dry_run.h"
#include "server/sidecar.h"
#include "server/user_auth.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

const std::string kSecret = "crm-session-secret-0123456789abcdef";  // 35 bytes
const std::string kIssuer = "https://crm.example.com";
const std::string kAudience = "fathom-bridge";
const std::string kCrmOrigin = "http://crm.example.com:8080";

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The claims of a good token for (tenant, user), valid for 10 minutes.
json claims_for(const std::string& tenant, const std::string& user) {
  return {{"iss", kIssuer}, {"aud", kAudience}, {"sub", user}, {"tenant_id", tenant}, {"team_id", "sales"},
          {"iat", now_s()}, {"exp", now_s() + 600}};
}

// A compact JWS made by libjwt: alg with key (a secret, or a PEM private key), optional kid.
std::string sign(const json& claims, jwt_alg_t alg, const std::string& key, const std::string& kid = "") {
  jwt_t* jwt = nullptr;
  BOOST_REQUIRE(jwt_new(&jwt) == 0);
  BOOST_REQUIRE(jwt_add_grants_json(jwt, claims.dump().c_str()) == 0);
  if (!kid.empty()) BOOST_REQUIRE(jwt_add_header(jwt, "kid", kid.c_str()) == 0);
  BOOST_REQUIRE(jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size())) == 0);
  char* out = jwt_encode_str(jwt);
  std::string token = out ? out : "";
  free(out);
  jwt_free(jwt);
  BOOST_REQUIRE(!token.empty());
  return token;
}

std::string hs256(const json& claims, const std::string& secret = kSecret) { return sign(claims, JWT_ALG_HS256, secret); }

// A key pair made by OpenSSL: its private PEM (for signing) and its public JWK.
struct KeyPair {
  std::string private_pem;
  json jwk;
};

std::string bn_b64url(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  BOOST_REQUIRE(EVP_PKEY_get_bn_param(key, name, &bn) == 1);
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return fb::detail::base64url_encode(bytes);
}

KeyPair make_key(const std::string& type, const std::string& kid) {
  EVP_PKEY* key = type == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                                : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  BOOST_REQUIRE(key);
  KeyPair kp;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  kp.private_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  if (type == "RSA") {
    kp.jwk = {{"kty", "RSA"}, {"kid", kid}, {"use", "sig"}, {"alg", "RS256"},
              {"n", bn_b64url(key, OSSL_PKEY_PARAM_RSA_N)}, {"e", bn_b64url(key, OSSL_PKEY_PARAM_RSA_E)}};
  } else {
    unsigned char point[65];
    size_t len = 0;
    BOOST_REQUIRE(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len) == 1);
    BOOST_REQUIRE_EQUAL(len, 65u);
    std::string p(reinterpret_cast<char*>(point), len);
    kp.jwk = {{"kty", "EC"}, {"kid", kid}, {"crv", "P-256"}, {"alg", "ES256"},
              {"x", fb::detail::base64url_encode(p.substr(1, 32))}, {"y", fb::detail::base64url_encode(p.substr(33, 32))}};
  }
  EVP_PKEY_free(key);
  return kp;
}

// fathom-sim, a bridge on a temp store with the default scripts and a CRM that records calls, and
// its sidecar with the user routes on (user_api as given, merged over the HS256 defaults).
struct UserEnv {
  int port = free_port();
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim{{"--meetings", "4", "--seed", "9", "--redirect-uri", base + "/oauth/callback"}};
  TempDir dir;
  std::unique_ptr<fb::Bridge> bridge;
  std::unique_ptr<fb::detail::Sidecar> sidecar;

  explicit UserEnv(const json& user_api_overrides = json::object()) {
    json user_api = {{"jwt_secret", kSecret}, {"issuer", kIssuer}, {"audience", kAudience},
                     {"allowed_origins", {kCrmOrigin}}};
    user_api.update(user_api_overrides);
    json cfg = {{"fathom", sim.fathom_settings(base + "/oauth/callback")},
                {"frontend", {{"url", kCrmOrigin}}},
                {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'u'))}}},
                {"webhooks", {{"public_base_url", base}}},
                {"store", {{store_key(dir.store("user.db")), dir.store("user.db")}}},
                {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
                {"sync", {{"scheduler", false}}},
                {"server", {{"api_token", "operator-token"}}},
                {"user_api", user_api},
                {"log_level", "warn"}};
    auto config = fb::parse_config(cfg.dump(), false);
    BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    auto opened = fb::Bridge::open(*config);
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    bridge = std::move(*opened);
    // A CRM that finds nothing and creates whatever it is asked to.
    for (const std::string& op : fb::detail::documented_crm_operations()) {
      BOOST_REQUIRE(bridge->register_crm_operation(op, [](const fb::CrmCall& c) -> fb::Result<std::string> {
        if (c.operation.rfind("find_", 0) == 0) return std::string("null");
        return json{{"id", c.operation + "-" + c.idempotency_key.substr(0, 12)}}.dump();
      }).ok());
    }
    auto started = fb::detail::Sidecar::start(*bridge, port);
    BOOST_REQUIRE_MESSAGE(started.ok(), started.status().to_string());
    sidecar = std::move(*started);
  }
  ~UserEnv() {
    if (sidecar) sidecar->stop();
  }

  static HeaderMap bearer(const std::string& token, const std::string& origin = kCrmOrigin) {
    HeaderMap h{{"Authorization", "Bearer " + token}};
    if (!origin.empty()) h.emplace("Origin", origin);
    return h;
  }
  HttpReply get(const std::string& path, const std::string& token) { return http_get(base + path, bearer(token)); }
  HttpReply post(const std::string& path, const json& body, const std::string& token) {
    return http_post_json(base + path, body, bearer(token));
  }

  // The user of token connects through the popup flow, approving at Fathom as email.
  int64_t connect(const std::string& token, const std::string& email) {
    HttpReply start = get("/fathom/connect", token);
    BOOST_REQUIRE_EQUAL(start.status, 200);
    BOOST_TEST(start.json()["callback_origin"] == base);  // where the popup's message comes from
    BOOST_TEST(start.json()["mode"] == "popup");
    std::string location = sim.authorize_as(start.json()["url"], email, "approve");
    BOOST_REQUIRE_EQUAL(http_get(location).status, 200);
    HttpReply status = get("/fathom/status", token);
    BOOST_REQUIRE_EQUAL(status.status, 200);
    BOOST_REQUIRE(status.json()["state"] == "connected");
    return status.json()["integration"]["integration_id"];
  }
};

// Expects a 401 whose reason is `reason`, with the Bearer challenge naming it too.
void expect_refused(const HttpReply& r, const std::string& reason) {
  BOOST_TEST_INFO("answer: " << r.status << " " << r.body);
  BOOST_TEST(r.status == 401);
  json j = json::parse(r.body, nullptr, false);
  BOOST_REQUIRE(j.is_object());
  BOOST_TEST(j["error"] == "unauthenticated");
  BOOST_TEST(j["reason"] == reason);
  BOOST_TEST(!j.value("message", "").empty());
  BOOST_TEST(r.header("WWW-Authenticate").find("error_description=\"" + reason + "\"") != std::string::npos);
  BOOST_TEST(r.header("Access-Control-Allow-Origin") == kCrmOrigin);  // the browser may read why
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tokens)

BOOST_AUTO_TEST_CASE(missing_expired_early_badly_signed_wrong_audience_and_alg_none_are_refused_with_a_reason) {
  UserEnv env;
  const std::string good = hs256(claims_for("acme", "u1"));
  BOOST_REQUIRE_EQUAL(env.get("/fathom/status", good).status, 200);

  expect_refused(http_get(env.base + "/fathom/status", {{"Origin", kCrmOrigin}}), "missing_token");
  expect_refused(http_get(env.base + "/fathom/status", {{"Origin", kCrmOrigin}, {"Authorization", "Basic dTpw"}}),
                 "missing_token");
  expect_refused(env.get("/fathom/status", "not-a-jwt"), "malformed_token");

  json c = claims_for("acme", "u1");
  c["exp"] = now_s() - 120;  // past the 30 s leeway
  expect_refused(env.get("/fathom/status", hs256(c)), "expired");
  c["exp"] = now_s() - 10;  // within the leeway: accepted
  BOOST_TEST(env.get("/fathom/status", hs256(c)).status == 200);
  c = claims_for("acme", "u1");
  c.erase("exp");
  expect_refused(env.get("/fathom/status", hs256(c)), "missing_claim");

  c = claims_for("acme", "u1");
  c["nbf"] = now_s() + 300;
  expect_refused(env.get("/fathom/status", hs256(c)), "not_yet_valid");
  c["nbf"] = now_s() + 10;  // within the leeway
  BOOST_TEST(env.get("/fathom/status", hs256(c)).status == 200);

  expect_refused(env.get("/fathom/status", hs256(claims_for("acme", "u1"), "another-secret-0123456789abcdefghij")),
                 "bad_signature");
  // A good token with its payload swapped for another user's: the signature no longer holds.
  const std::string other = hs256(claims_for("acme", "u2"));
  const std::string forged = good.substr(0, good.find('.')) + other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
                             good.substr(good.rfind('.'));
  expect_refused(env.get("/fathom/status", forged), "bad_signature");

  c = claims_for("acme", "u1");
  c["aud"] = "someone-else";
  expect_refused(env.get("/fathom/status", hs256(c)), "wrong_audience");
  c["aud"] = json::array({"someone-else", kAudience});  // an array that contains ours is fine
  BOOST_TEST(env.get("/fathom/status", hs256(c)).status == 200);
  c = claims_for("acme", "u1");
  c["iss"] = "https://evil.example.com";
  expect_refused(env.get("/fathom/status", hs256(c)), "wrong_issuer");

  // alg none: a header that says so and no signature, as an attacker would send it.
  const std::string none = fb::detail::base64url_encode(std::string(R"({"alg":"none","typ":"JWT"})")) + "." +
                           fb::detail::base64url_encode(claims_for("acme", "u1").dump()) + ".";
  expect_refused(env.get("/fathom/status", none), "alg_not_allowed");
  // RS256 without a JWKS configured: refused before any signature check.
  const std::string rs_header = fb::detail::base64url_encode(std::string(R"({"alg":"RS256","typ":"JWT"})"));
  expect_refused(env.get("/fathom/status", rs_header + good.substr(good.find('.'))), "alg_not_allowed");

  c = claims_for("acme", "u1");
  c.erase("tenant_id");
  expect_refused(env.get("/fathom/status", hs256(c)), "missing_claim");
  c = claims_for("acme", "u1");
  c["sub"] = std::string("u\x01", 2);
  expect_refused(env.get("/fathom/status", hs256(c)), "invalid_claim");

  // Every user route checks the token, the POSTs too.
  expect_refused(env.post("/fathom/sync", json::object(), "x.y.z"), "malformed_token");
  expect_refused(env.post("/fathom/disconnect", json::object(), ""), "missing_token");
  expect_refused(env.get("/fathom/connect", hs256(c)), "invalid_claim");
}

BOOST_AUTO_TEST_CASE(rs256_and_es256_keys_come_from_the_jwks_file_and_decide_the_algorithm) {
  KeyPair rsa = make_key("RSA", "rsa-1"), ec = make_key("EC", "ec-1"), stranger = make_key("RSA", "rsa-1");
  TempDir keys;
  const std::string jwks = keys.file("jwks.json");
  std::ofstream(jwks) << json{{"keys", {rsa.jwk, ec.jwk}}}.dump();
  UserEnv env({{"jwt_secret", ""}, {"jwks_file", jwks}, {"tenant_claim", "org"}, {"user_claim", "uid"}});

  json c = claims_for("", "");
  c["org"] = "globex";
  c["uid"] = 4242;  // an integer claim names the user "4242"
  HttpReply by_rsa = env.get("/fathom/status", sign(c, JWT_ALG_RS256, rsa.private_pem, "rsa-1"));
  BOOST_TEST_INFO(by_rsa.body);
  BOOST_TEST(by_rsa.status == 200);
  BOOST_TEST(env.get("/fathom/status", sign(c, JWT_ALG_ES256, ec.private_pem, "ec-1")).status == 200);
  BOOST_TEST(env.get("/fathom/status", sign(c, JWT_ALG_ES256, ec.private_pem)).status == 200);  // no kid: by alg

  expect_refused(env.get("/fathom/status", sign(c, JWT_ALG_RS256, stranger.private_pem, "rsa-1")), "bad_signature");
  expect_refused(env.get("/fathom/status", sign(c, JWT_ALG_RS256, rsa.private_pem, "rsa-2")), "unknown_key");
  expect_refused(env.get("/fathom/status", sign(c, JWT_ALG_RS256, rsa.private_pem, "ec-1")), "unknown_key");
  // Key confusion: an HS256 token whose secret is the RSA public key is never checked with it.
  auto parsed = fb::detail::parse_jwks(json{{"keys", {rsa.jwk}}}.dump(), "test");
  BOOST_REQUIRE(parsed.ok());
  expect_refused(env.get("/fathom/status", sign(c, JWT_ALG_HS256, (*parsed)[0].pem)), "alg_not_allowed");
  // Key rotation: the CRM publishes a new key in the file, then signs with it.
  KeyPair next = make_key("EC", "ec-2");
  const std::string with_next = sign(c, JWT_ALG_ES256, next.private_pem, "ec-2");
  expect_refused(env.get("/fathom/status", with_next), "unknown_key");
  std::ofstream(jwks) << json{{"keys", {rsa.jwk, ec.jwk, next.jwk}}}.dump();
  std::filesystem::last_write_time(jwks, std::filesystem::last_write_time(jwks) + std::chrono::seconds(2));
  BOOST_TEST(env.get("/fathom/status", with_next).status == 200);
  std::ofstream(jwks) << "{not json";  // a broken file keeps the keys already loaded
  std::filesystem::last_write_time(jwks, std::filesystem::last_write_time(jwks) + std::chrono::seconds(4));
  expect_refused(env.get("/fathom/status", sign(c, JWT_ALG_ES256, make_key("EC", "ec-3").private_pem, "ec-3")),
                 "unknown_key");
  BOOST_TEST(env.get("/fathom/status", with_next).status == 200);
  // The old names are not the configured claims any more.
  expect_refused(env.get("/fathom/status", sign(claims_for("acme", "u1"), JWT_ALG_ES256, ec.private_pem)),
                 "missing_claim");
}

BOOST_AUTO_TEST_CASE(bad_settings_and_bad_jwks_files_are_named) {
  auto with = [](const json& user_api) {
    json cfg = {{"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'k'))}}}, {"user_api", user_api}};
    return fb::parse_config(cfg.dump(), false, {false});
  };
  auto no_issuer = with({{"jwt_secret", kSecret}, {"audience", "a"}});
  BOOST_TEST(no_issuer.status().message().find("user_api.issuer") != std::string::npos);
  auto short_secret = with({{"jwt_secret", "short"}, {"issuer", "i"}, {"audience", "a"}});
  BOOST_TEST(short_secret.status().message().find("at least 32 bytes") != std::string::npos);
  auto bad_origin = with({{"jwt_secret", kSecret}, {"issuer", "i"}, {"audience", "a"},
                          {"allowed_origins", {"https://crm.example.com/app"}}});
  BOOST_TEST(bad_origin.status().message().find("'https://crm.example.com/app'") != std::string::npos);
  BOOST_TEST(with({{"jwt_secret", kSecret}, {"issuer", "i"}, {"audience", "a"},
                   {"allowed_origins", {"https://crm.example.com", "http://127.0.0.1:8080"}}}).ok());

  auto jwks = [](const json& key) { return fb::detail::parse_jwks(json{{"keys", {key}}}.dump(), "jwks.json"); };
  BOOST_TEST(jwks({{"kty", "oct"}, {"k", "AAAA"}}).status().message() == "jwks.json key 0: kty 'oct' is not supported (RSA or EC)");
  BOOST_TEST(jwks({{"kty", "EC"}, {"crv", "P-384"}}).status().message().find("P-256") != std::string::npos);
  BOOST_TEST(jwks({{"kty", "RSA"}, {"n", "AQAB"}, {"e", "AQAB"}}).status().message().find("2048") != std::string::npos);
  BOOST_TEST(fb::detail::parse_jwks("[]", "jwks.json").status().code() == fb::Code::kConfig);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(routes)

BOOST_AUTO_TEST_CASE(a_user_sees_and_acts_on_their_own_integration_only) {
  UserEnv env;
  const std::string alice = hs256(claims_for("acme", "alice"));
  const std::string bob = hs256(claims_for("acme", "bob"));
  const std::string alice_elsewhere = hs256(claims_for("globex", "alice"));

  HttpReply none = env.get("/fathom/status", alice);
  BOOST_REQUIRE_EQUAL(none.status, 200);
  BOOST_TEST(none.json()["state"] == "disconnected");
  BOOST_TEST(none.json()["integration"].is_null());
  BOOST_TEST(env.post("/fathom/sync", json::object(), alice).status == 404);  // nothing to sync yet

  const int64_t id = env.connect(alice, "alice@example.com");
  json view = env.get("/fathom/status", alice).json();
  // Safe fields only: no tokens, no error texts, no owner ids.
  std::set<std::string> keys;
  for (const auto& [k, _] : view["integration"].items()) keys.insert(k);
  BOOST_TEST((keys == std::set<std::string>{"integration_id", "kind", "token_status", "expires_at",
                                            "has_refresh_token", "last_sync_at", "fathom_email"}));
  BOOST_TEST(view["integration"]["token_status"] == "valid");
  BOOST_TEST(view["integrations"].size() == 1u);
  BOOST_TEST(env.get("/fathom/status", alice).body.find("access_token") == std::string::npos);

  // Bob (same tenant) and Alice of another tenant see nothing, and cannot act on Alice's.
  for (const std::string& other : {bob, alice_elsewhere}) {
    json theirs = env.get("/fathom/status", other).json();
    BOOST_TEST(theirs["state"] == "disconnected");
    BOOST_TEST(theirs["integrations"].empty());
    BOOST_TEST(env.post("/fathom/sync", {{"integration_id", id}}, other).status == 404);
    BOOST_TEST(env.post("/fathom/disconnect", {{"integration_id", id}}, other).status == 404);
  }
  BOOST_TEST(env.get("/fathom/status", alice).json()["state"] == "connected");

  // Alice syncs her meetings (her current integration, no id needed).
  HttpReply job = env.post("/fathom/sync", json::object(), alice);
  BOOST_TEST_INFO(job.body);
  BOOST_REQUIRE_EQUAL(job.status, 200);
  BOOST_TEST(job.json()["status"] == "succeeded");
  BOOST_TEST(!env.get("/fathom/status", alice).json()["integration"]["last_sync_at"].is_null());
  BOOST_TEST(env.post("/fathom/sync", {{"mode", "everything"}}, alice).status == 400);

  // The grant is revoked inside Fathom: the next sync finds out, the view says reconnect.
  env.sim.admin("POST", "/_sim/grants/revoke", {{"user", "alice@example.com"}});
  env.sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
  env.post("/fathom/sync", json::object(), alice);
  json revoked = env.get("/fathom/status", alice).json();
  BOOST_TEST(revoked["state"] == "reconnect_required");
  BOOST_TEST(revoked["integration"]["token_status"] == "reconnect_required");
  // Reconnecting makes it connected again.
  env.connect(alice, "alice@example.com");

  HttpReply gone = env.post("/fathom/disconnect", json::object(), alice);
  BOOST_REQUIRE_EQUAL(gone.status, 200);
  BOOST_TEST(env.get("/fathom/status", alice).json()["state"] != "connected");
}

// "Sync now" pressed while a sync of the integration runs (the scheduler's first sync after a
// connect, or an earlier click) answers with that sync's result when it ends, not 409 "already
// running"; a direct sync() without wait_if_running is still refused.
BOOST_AUTO_TEST_CASE(sync_now_during_a_running_sync_answers_with_that_syncs_result) {
  UserEnv env;
  const std::string alice = hs256(claims_for("acme", "alice"));
  const int64_t id = env.connect(alice, "alice@example.com");
  env.sim.config({{"latency_ms", 1000}});  // the running sync's three API calls take 3 s
  const fb::Caller caller{"acme", "alice", "sales"};
  fb::SyncRequest backfill;
  backfill.mode = "backfill";
  auto started = env.bridge->sync_start(caller, id, backfill);
  BOOST_REQUIRE_MESSAGE(started.ok(), started.status().to_string());
  const int64_t running = json::parse(*started)["id"];
  BOOST_TEST(env.bridge->sync(caller, id, fb::SyncRequest{}).code() == fb::Code::kConflict);

  HttpReply job = env.post("/fathom/sync", json::object(), alice);
  env.sim.config({{"latency_ms", 0}});
  BOOST_TEST_INFO(job.body);
  BOOST_REQUIRE_EQUAL(job.status, 200);
  BOOST_TEST(job.json()["id"] == running);
  BOOST_TEST(job.json()["mode"] == "backfill");
  BOOST_TEST(job.json()["status"] == "succeeded");
  BOOST_TEST(job.json()["meetings_seen"].get<int64_t>() > 0);

  // With nothing running, Sync now runs a sync of its own.
  HttpReply next = env.post("/fathom/sync", json::object(), alice);
  BOOST_REQUIRE_EQUAL(next.status, 200);
  BOOST_TEST(next.json()["id"].get<int64_t>() > running);
  BOOST_TEST(next.json()["mode"] == "incremental");
}

BOOST_AUTO_TEST_CASE(cors_answers_the_configured_origins_only_and_never_with_credentials) {
  UserEnv env;
  const std::string token = hs256(claims_for("acme", "u1"));

  HttpReply pre = http_request({"OPTIONS", env.base + "/fathom/sync",
                                {{"Origin", kCrmOrigin}, {"Access-Control-Request-Method", "POST"},
                                 {"Access-Control-Request-Headers", "authorization, content-type"}}});
  BOOST_TEST(pre.status == 204);
  BOOST_TEST(pre.header("Access-Control-Allow-Origin") == kCrmOrigin);
  BOOST_TEST(pre.header("Access-Control-Allow-Methods") == "POST");
  BOOST_TEST(pre.header("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
  BOOST_TEST(!pre.has_header("Access-Control-Allow-Credentials"));
  BOOST_TEST(pre.header("Vary") == "Origin");

  for (const std::string& bad : {std::string("http://evil.example.com"), std::string("http://crm.example.com"),
                                 std::string("null"), kCrmOrigin + "/"}) {
    BOOST_TEST_INFO("origin " << bad);
    HttpReply denied = http_request({"OPTIONS", env.base + "/fathom/status",
                                     {{"Origin", bad}, {"Access-Control-Request-Method", "GET"}}});
    BOOST_TEST(denied.status == 403);
    BOOST_TEST(!denied.has_header("Access-Control-Allow-Origin"));
    HttpReply refused = http_get(env.base + "/fathom/status", UserEnv::bearer(token, bad));
    BOOST_TEST(refused.status == 403);
    BOOST_TEST(refused.json()["reason"] == "origin_not_allowed");
    BOOST_TEST(!refused.has_header("Access-Control-Allow-Origin"));
  }

  HttpReply ok = env.get("/fathom/status", token);
  BOOST_TEST(ok.status == 200);
  BOOST_TEST(ok.header("Access-Control-Allow-Origin") == kCrmOrigin);
  BOOST_TEST(!ok.has_header("Access-Control-Allow-Credentials"));
  BOOST_TEST(!ok.has_header("Set-Cookie"));
  BOOST_TEST(ok.header("Cache-Control") == "no-store");
  // A server-side caller (no Origin) is not a CORS request: the token alone decides.
  BOOST_TEST(http_get(env.base + "/fathom/status", UserEnv::bearer(token, "")).status == 200);

  // The widget is public and loadable as a module script from any page.
  HttpReply js = http_get(env.base + "/fathom/widget.js", {{"Origin", "http://anywhere.example"}});
  BOOST_TEST(js.status == 200);
  BOOST_TEST(js.header("Content-Type").rfind("text/javascript", 0) == 0);
  BOOST_TEST(js.header("Access-Control-Allow-Origin") == "*");
  BOOST_TEST(js.body.find("customElements.define('fathom-connect'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_user_routes_are_off_without_a_secret_or_jwks) {
  UserEnv env({{"jwt_secret", ""}, {"allowed_origins", json::array()}});
  HttpReply r = http_get(env.base + "/fathom/status", UserEnv::bearer(hs256(claims_for("acme", "u1")), ""));
  BOOST_TEST(r.status == 404);
  BOOST_TEST(r.json()["message"].get<std::string>().find("user_api.jwt_secret") != std::string::npos);
  BOOST_TEST(http_get(env.base + "/fathom/widget.js").status == 200);
}

BOOST_AUTO_TEST_SUITE_END()
