// Config loading: every bad setting fails at start with its name, secrets are never echoed.
#include <cstdlib>

#include <boost/test/unit_test.hpp>

#include "crypto/encoding.h"
#include "fathom_bridge/config.h"

namespace {

const std::string kKey = fb::detail::base64_encode(std::string(32, 'k'));

std::string base_config(const std::string& extra_fathom = "") {
  return R"({"fathom": {"client_id": "cid", "client_secret": "very-secret-value",
             "redirect_uri": "http://127.0.0.1:8787/oauth/callback")" + extra_fathom + R"(},
             "tokens": {"key": ")" + kKey + R"("}})";
}

// The environment must not leak into these tests (a developer may have FATHOM_* set).
struct CleanEnv {
  CleanEnv() {
    for (const char* n : {"FATHOM_CLIENT_ID", "FATHOM_CLIENT_SECRET", "FATHOM_REDIRECT_URI", "FATHOM_TOKEN_URL",
                          "FATHOM_BRIDGE_TOKEN_KEY", "FATHOM_BRIDGE_DB", "FATHOM_BRIDGE_PORT", "FRONTEND_URL",
                          "FATHOM_API_BASE", "FATHOM_AUTHORIZE_URL", "FATHOM_BRIDGE_OLD_TOKEN_KEYS"}) {
      unsetenv(n);
    }
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(config, CleanEnv)

BOOST_AUTO_TEST_CASE(defaults_follow_the_reference) {
  auto c = fb::parse_config(base_config(), false);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(c->fathom.authorize_url == "https://fathom.video/external/v1/oauth2/authorize");
  BOOST_TEST(c->fathom.token_url == "https://fathom.video/external/v1/oauth2/token");
  BOOST_TEST(c->fathom.api_base == "https://api.fathom.ai/external/v1");
  BOOST_TEST(c->fathom.scope == "public_api");
  BOOST_TEST(c->fathom.use_pkce == false);
  BOOST_TEST(c->tokens.refresh_buffer_s == 300);
  BOOST_TEST(c->tokens.state_ttl_s == 600);
  BOOST_TEST(c->sync.interval_s == 3600);
  BOOST_TEST(c->sync.rate_limit_per_minute == 60);
  BOOST_TEST(c->webhooks.tolerance_s == 300);
}

// A strict peer's review (session 20): the prefix was not checked. Without a leading '/' the URL
// registered at Fathom was "https://hostwebhooks/fathom/<token>" and no delivery matched the
// route; an empty one mounted the receiver on every POST.
BOOST_AUTO_TEST_CASE(the_webhook_path_prefix_must_be_a_path) {
  for (const std::string good : {"/webhooks/fathom", "/hooks", "/a-b/c_d.e~f", "/webhooks/"}) {
    auto c = fb::parse_config(R"({"tokens": {"key": ")" + kKey + R"("}, "webhooks": {"path_prefix": ")" + good +
                                  R"("}})",
                              false, {.oauth = false});
    BOOST_TEST(c.ok(), good << ": " << c.status());
  }
  for (const std::string bad : {"", "/", "//", "webhooks/fathom", "//x", "/a//b", "/a b", "/x?y=1", "/x#y"}) {
    auto c = fb::parse_config(R"({"tokens": {"key": ")" + kKey + R"("}, "webhooks": {"path_prefix": ")" + bad +
                                  R"("}})",
                              false, {.oauth = false});
    BOOST_TEST((c.code() == fb::Code::kConfig), bad);
    BOOST_TEST(c.status().message().find("webhooks.path_prefix") != std::string::npos, c.status().message());
  }
}

BOOST_AUTO_TEST_CASE(missing_settings_are_named) {
  auto c = fb::parse_config(R"({"tokens": {"key": ")" + kKey + R"("}})", false);
  BOOST_TEST(c.code() == fb::Code::kConfig);
  BOOST_TEST(c.status().message().find("fathom.client_id") != std::string::npos);
  auto no_key = fb::parse_config(R"({"fathom": {"client_id": "a", "client_secret": "b", "redirect_uri": "http://x/cb"}})", false);
  BOOST_TEST(no_key.status().message().find("tokens.key") != std::string::npos);
  // An API-key-only host needs no OAuth app.
  auto api_only = fb::parse_config(R"({"tokens": {"key": ")" + kKey + R"("}})", false, {.oauth = false});
  BOOST_TEST(api_only.ok());
}

BOOST_AUTO_TEST_CASE(malformed_settings_are_named_without_echoing_secrets) {
  auto typo = fb::parse_config(base_config(R"(, "tokn_url": "x")"), false);
  BOOST_TEST(typo.status().message().find("fathom.tokn_url") != std::string::npos);
  auto wrong_type = fb::parse_config(base_config(R"(, "use_pkce": "yes")"), false);
  BOOST_TEST(wrong_type.status().message().find("fathom.use_pkce") != std::string::npos);
  auto bad_url = fb::parse_config(base_config(R"(, "token_url": "ftp://x")"), false);
  BOOST_TEST(bad_url.status().message().find("fathom.token_url") != std::string::npos);
  auto bad_scope = fb::parse_config(base_config(R"(, "scope": "meetings.read")"), false);
  BOOST_TEST(bad_scope.status().message().find("public_api") != std::string::npos);
  auto bad_key = fb::parse_config(R"({"fathom": {"client_id": "a", "client_secret": "very-secret-value",
      "redirect_uri": "http://x/cb"}, "tokens": {"key": "c2hvcnQ="}})", false);
  BOOST_TEST(bad_key.code() == fb::Code::kConfig);
  for (const auto* r : {&typo, &wrong_type, &bad_url, &bad_scope, &bad_key}) {
    BOOST_TEST(r->status().message().find("very-secret-value") == std::string::npos);
    BOOST_TEST(r->status().message().find("c2hvcnQ") == std::string::npos);
  }
  BOOST_TEST(fb::parse_config("{not json", false).status().message().find("not valid JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(environment_overrides_the_file) {
  setenv("FATHOM_CLIENT_ID", "from-env", 1);
  setenv("FATHOM_TOKEN_URL", "http://127.0.0.1:9/external/v1/oauth2/token", 1);
  setenv("FATHOM_BRIDGE_PORT", "9999", 1);
  auto c = fb::parse_config(base_config(), true);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(c->fathom.client_id == "from-env");
  BOOST_TEST(c->fathom.token_url == "http://127.0.0.1:9/external/v1/oauth2/token");
  BOOST_TEST(c->server.port == 9999);
  setenv("FATHOM_BRIDGE_PORT", "http", 1);
  BOOST_TEST(fb::parse_config(base_config(), true).status().message().find("FATHOM_BRIDGE_PORT") != std::string::npos);
  unsetenv("FATHOM_CLIENT_ID");
  unsetenv("FATHOM_TOKEN_URL");
  unsetenv("FATHOM_BRIDGE_PORT");
}

BOOST_AUTO_TEST_CASE(missing_file_is_named) {
  auto c = fb::load_config("/nonexistent/fathom-bridge.json");
  BOOST_TEST(c.code() == fb::Code::kConfig);
  BOOST_TEST(c.status().message().find("/nonexistent/fathom-bridge.json") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(operations_settings_log_format_shutdown_and_proxy) {
  auto d = fb::parse_config(base_config(), false);
  BOOST_REQUIRE(d.ok());
  BOOST_TEST(d->log.format == "text");
  BOOST_TEST(d->server.shutdown_timeout_s == 10);
  BOOST_TEST(d->fathom.proxy.empty());
  std::string doc = base_config(R"(, "proxy": "http://127.0.0.1:3128", "no_proxy": ".internal")");
  doc.insert(doc.rfind('}'), R"(, "log": {"format": "json", "level": "warn"}, "server": {"shutdown_timeout_s": 3})");
  auto c = fb::parse_config(doc, false);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(c->log.format == "json");
  BOOST_TEST(c->log_level == "warn");
  BOOST_TEST(c->server.shutdown_timeout_s == 3);
  BOOST_TEST(c->fathom.proxy == "http://127.0.0.1:3128");
  BOOST_TEST(c->fathom.no_proxy == ".internal");
  std::string bad = base_config();
  bad.insert(bad.rfind('}'), R"(, "log": {"format": "xml"})");
  auto b = fb::parse_config(bad, false);
  BOOST_TEST(b.code() == fb::Code::kConfig);
  BOOST_TEST(b.status().message().find("log.format") != std::string::npos);
  auto p = fb::parse_config(base_config(R"(, "proxy": "socks5://x")"), false);
  BOOST_TEST(p.status().message().find("fathom.proxy") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
