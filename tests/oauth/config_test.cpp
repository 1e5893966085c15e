// The oauth settings: loaded from the file and the environment (which wins), every problem named,
// no secret echoed.
#include <cstdlib>

#include <boost/test/unit_test.hpp>

#include "crypto/encoding.h"
#include "fathom_bridge/config.h"
#include "oauth/integration_store.h"

namespace {

const std::string kKey = fb::detail::base64_encode(std::string(32, 'k'));
const std::string kOldKey = fb::detail::base64_encode(std::string(32, 'o'));

struct CleanEnv {
  CleanEnv() { clear(); }
  ~CleanEnv() { clear(); }
  static void clear() {
    for (const char* n : {"FATHOM_CLIENT_ID", "FATHOM_CLIENT_SECRET", "FATHOM_REDIRECT_URI", "FATHOM_TOKEN_URL",
                          "FATHOM_BRIDGE_TOKEN_KEY", "FATHOM_BRIDGE_DB", "FATHOM_BRIDGE_PORT", "FRONTEND_URL",
                          "FATHOM_API_BASE", "FATHOM_AUTHORIZE_URL", "FATHOM_BRIDGE_OLD_TOKEN_KEYS", "FATHOM_ISSUER"}) {
      unsetenv(n);
    }
  }
};

std::string with_tokens(const std::string& tokens_extra) {
  return R"({"fathom": {"client_id": "cid", "client_secret": "s3cr3t-client-value",
             "redirect_uri": "https://crm.example.test/oauth/callback"},
             "frontend": {"url": "https://crm.example.test"},
             "tokens": {"key": ")" + kKey + "\"" + tokens_extra + "}}";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(oauth_config, CleanEnv)

BOOST_AUTO_TEST_CASE(everything_can_come_from_the_environment) {
  setenv("FATHOM_CLIENT_ID", "env-client", 1);
  setenv("FATHOM_CLIENT_SECRET", "env-secret-value", 1);
  setenv("FATHOM_REDIRECT_URI", "https://crm.example.test/cb", 1);
  setenv("FRONTEND_URL", "https://app.example.test", 1);
  setenv("FATHOM_BRIDGE_TOKEN_KEY", ("k2:" + kKey).c_str(), 1);
  setenv("FATHOM_BRIDGE_OLD_TOKEN_KEYS", ("k1:" + kOldKey).c_str(), 1);
  setenv("FATHOM_TOKEN_URL", "https://api.fathom.ai/external/v1/oauth2/token", 1);
  auto c = fb::parse_config("", true);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(c->fathom.client_id == "env-client");
  BOOST_TEST(c->fathom.client_secret == "env-secret-value");
  BOOST_TEST(c->fathom.redirect_uri == "https://crm.example.test/cb");
  BOOST_TEST(c->frontend.url == "https://app.example.test");
  BOOST_TEST(c->fathom.token_url == "https://api.fathom.ai/external/v1/oauth2/token");
  auto sealer = fb::detail::make_sealer(c->tokens);
  BOOST_REQUIRE(sealer.ok());
  BOOST_TEST((*sealer)->active_key_id() == "k2");
  // The old key opens what it sealed; new writes use k2.
  fb::detail::Sealer old;
  std::string id;
  fb::detail::SecretString key;
  BOOST_REQUIRE(fb::detail::parse_key_spec("k1:" + kOldKey, &id, &key).ok());
  BOOST_REQUIRE(old.add_key(id, key).ok());
  auto blob = old.seal(fb::detail::SecretString("rt"), "aad");
  BOOST_TEST((*sealer)->open(*blob, "aad")->reveal() == "rt");
  BOOST_TEST(fb::detail::Sealer::key_id_of(*(*sealer)->seal(fb::detail::SecretString("x"), "aad")) == "k2");
}

BOOST_AUTO_TEST_CASE(missing_oauth_settings_are_named_with_their_variable) {
  setenv("FATHOM_BRIDGE_TOKEN_KEY", kKey.c_str(), 1);
  auto c = fb::parse_config("", true);
  BOOST_TEST(c.code() == fb::Code::kConfig);
  BOOST_TEST(c.status().message().find("FATHOM_CLIENT_ID") != std::string::npos);
  setenv("FATHOM_CLIENT_ID", "x", 1);
  BOOST_TEST(fb::parse_config("", true).status().message().find("FATHOM_CLIENT_SECRET") != std::string::npos);
  setenv("FATHOM_CLIENT_SECRET", "y", 1);
  BOOST_TEST(fb::parse_config("", true).status().message().find("FATHOM_REDIRECT_URI") != std::string::npos);
  setenv("FATHOM_REDIRECT_URI", "not a url", 1);
  BOOST_TEST(fb::parse_config("", true).status().message().find("fathom.redirect_uri") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(token_settings_are_checked_without_echoing_secrets) {
  BOOST_REQUIRE(fb::parse_config(with_tokens(""), false).ok());
  struct Case {
    std::string extra;
    std::string names;
  } cases[] = {
      {R"(, "refresh_lock_ttl_s": 0)", "tokens.refresh_lock_ttl_s"},
      {R"(, "keepalive_window_s": -1)", "tokens.keepalive_window_s"},
      {R"(, "failure_cooldown_s": -5)", "tokens.failure_cooldown_s"},
      {R"(, "refresh_backoff_base_ms": 1000, "refresh_backoff_max_ms": 10)", "tokens.refresh_backoff_max_ms"},
      {R"(, "state_ttl_s": 0)", "tokens.state_ttl_s"},
      {R"(, "refresh_max_attempts": 0)", "tokens.refresh_max_attempts"},
      {R"(, "old_keys": ["k0:bm90LWEta2V5"])", "tokens.old_keys"},
      {R"(, "refresh_buffer_s": "300")", "tokens.refresh_buffer_s"},
  };
  for (const auto& c : cases) {
    auto r = fb::parse_config(with_tokens(c.extra), false);
    BOOST_TEST(r.code() == fb::Code::kConfig, c.extra);
    BOOST_TEST(r.status().message().find(c.names) != std::string::npos, r.status().message());
    BOOST_TEST(r.status().message().find("s3cr3t-client-value") == std::string::npos);
    BOOST_TEST(r.status().message().find("bm90LWEta2V5") == std::string::npos);
    BOOST_TEST(r.status().message().find(kKey) == std::string::npos);
  }
  auto bad_key = fb::parse_config(R"({"fathom": {"client_id": "c", "client_secret": "s3cr3t-client-value",
      "redirect_uri": "https://x.test/cb"}, "tokens": {"key": "k1:c2hvcnQta2V5"}})", false);
  BOOST_TEST(bad_key.status().message().find("tokens.key") != std::string::npos);
  BOOST_TEST(bad_key.status().message().find("c2hvcnQta2V5") == std::string::npos);
  auto path = fb::parse_config(R"({"fathom": {"client_id": "c", "client_secret": "s", "redirect_uri": "https://x.test/cb"},
      "frontend": {"success_path": "settings"}, "tokens": {"key": ")" + kKey + R"("}})", false);
  BOOST_TEST(path.status().message().find("frontend.success_path") != std::string::npos);
}

// Issue 10 point 10: the client secret, codes, tokens and API keys must not travel in clear.
BOOST_AUTO_TEST_CASE(plain_http_to_a_non_loopback_host_is_refused_by_setting_name) {
  auto with_fathom = [](const std::string& key, const std::string& url) {
    return R"({"fathom": {"client_id": "cid", "client_secret": "s3cr3t-client-value",
               "redirect_uri": "https://crm.example.test/oauth/callback", ")" + key + R"(": ")" + url + R"("},
               "tokens": {"key": ")" + kKey + R"("}})";
  };
  for (const char* key : {"token_url", "authorize_url", "api_base"}) {
    for (const char* url : {"http://fathom.video/external/v1/x", "http://10.0.0.7:8080/x", "HTTP://Fathom.Video/x",
                            "http://127.0.0.1.evil.test/x", "http://[2001:db8::1]/x"}) {
      auto r = fb::parse_config(with_fathom(key, url), false);
      BOOST_TEST(r.code() == fb::Code::kConfig, key << "=" << url);
      BOOST_TEST(r.status().message().find(std::string("fathom.") + key) != std::string::npos, r.status().message());
      BOOST_TEST(r.status().message().find("s3cr3t-client-value") == std::string::npos);
    }
    for (const char* url : {"https://fathom.video/x", "http://127.0.0.1:8788/x", "http://127.9.9.9/x",
                            "http://localhost:8788/x", "http://[::1]:8788/x"}) {
      auto r = fb::parse_config(with_fathom(key, url), false);
      BOOST_TEST(r.ok(), key << "=" << url << ": " << r.status().to_string());
    }
  }
  // Also when OAuth is not required (API-key hosts): api_base carries the API keys.
  auto api_only = fb::parse_config(R"({"fathom": {"api_base": "http://api.fathom.test/v1"}, "tokens": {"key": ")" +
                                       kKey + R"("}})", false, {.oauth = false});
  BOOST_TEST(api_only.status().message().find("fathom.api_base") != std::string::npos);
}

// Issue 10 points 3 and 12: the new settings load and are checked.
BOOST_AUTO_TEST_CASE(issuer_and_callback_timeout_settings) {
  setenv("FATHOM_ISSUER", "https://fathom.example", 1);
  auto c = fb::parse_config(with_tokens(""), true);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(c->fathom.issuer == "https://fathom.example");
  BOOST_TEST(!c->fathom.require_iss);
  BOOST_TEST(c->fathom.callback_timeout_ms == 15000);
  auto bad = fb::parse_config(R"({"fathom": {"client_id": "c", "client_secret": "s", "redirect_uri": "https://x.test/cb",
      "callback_timeout_ms": 0, "require_iss": true}, "tokens": {"key": ")" + kKey + R"("}})", false);
  BOOST_TEST(bad.status().message().find("fathom.callback_timeout_ms") != std::string::npos);
  auto iss = fb::parse_config(R"({"fathom": {"client_id": "c", "client_secret": "s", "redirect_uri": "https://x.test/cb",
      "issuer": "fathom"}, "tokens": {"key": ")" + kKey + R"("}})", false);
  BOOST_TEST(iss.status().message().find("fathom.issuer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_repeated_key_id_is_refused) {
  fb::TokenConfig t;
  t.key = "k1:" + kKey;
  t.old_keys = {"k1:" + kOldKey};
  auto s = fb::detail::make_sealer(t);
  BOOST_TEST(s.code() == fb::Code::kConfig);
  BOOST_TEST(s.status().message().find("tokens.old_keys") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
