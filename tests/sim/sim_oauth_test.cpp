// OAuth behaviour of fathom-sim (fathom-api.md 1 and 7 items 1-6), over real HTTP.
#include <boost/test/unit_test.hpp>

#include <openssl/sha.h>

#include <regex>
#include <thread>

#include "crypto/encoding.h"
#include "sim/sim_test_util.h"

using namespace fb::simtest;
using fb::test::http_get;
using fb::test::http_post_form;
using fb::test::query_param;

namespace {

std::string html_unescape(std::string s) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
                          {"&#39;", "'"}, {"&amp;", "&"}}) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(oauth)

BOOST_AUTO_TEST_CASE(authorize_page_is_a_real_form_with_approve_deny_and_user_picker) {
  SimProcess sim;
  HttpReply page = http_get(authorize_request(sim));
  BOOST_TEST(page.status == 200);
  BOOST_TEST(page.header("Content-Type").find("text/html") == 0);
  BOOST_TEST(page.body.find("<form method=\"post\" action=\"/external/v1/oauth2/authorize\">") != std::string::npos);
  BOOST_TEST(page.body.find("value=\"approve\">Approve</button>") != std::string::npos);
  BOOST_TEST(page.body.find("value=\"deny\">Deny</button>") != std::string::npos);
  BOOST_TEST(page.body.find("<select id=\"user\" name=\"user\">") != std::string::npos);
  for (const char* u : {"alice@example.com", "bob@example.com", "carol@example.com"}) {
    BOOST_TEST(page.body.find(std::string("<option value=\"") + u + "\">") != std::string::npos);
  }
  BOOST_TEST(sim.counters()["authorize"]["shown"] == 1);
}

BOOST_AUTO_TEST_CASE(state_comes_back_byte_for_byte_on_approve_and_deny) {
  SimProcess sim;
  // Characters that need escaping in HTML, query strings and JSON.
  const std::string state = "a b+c&d=e/\"<x>'%25\xc3\xa9~";
  std::string loc = sim.authorize_as(authorize_request(sim, {}, state), "bob@example.com");
  BOOST_TEST(loc.rfind(kRedirect + "?code=", 0) == 0);
  BOOST_TEST(query_param(loc, "state") == state);
  BOOST_TEST(!query_param(loc, "code").empty());

  // What a browser does: post the page's own hidden inputs (HTML-unescaped) with the chosen button.
  HttpReply page = http_get(authorize_request(sim, {}, state));
  Fields posted;
  std::regex input("<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">");
  for (std::sregex_iterator it(page.body.begin(), page.body.end(), input), end; it != end; ++it) {
    posted.emplace_back(html_unescape((*it)[1]), html_unescape((*it)[2]));
  }
  BOOST_TEST(posted.size() == 5u);
  posted.insert(posted.end(), {{"user", "carol@example.com"}, {"decision", "approve"}});
  HttpReply browser = http_post_form(sim.authorize_url(), posted);
  BOOST_TEST(browser.status == 302);
  BOOST_TEST(query_param(browser.header("Location"), "state") == state);
  BOOST_TEST(exchange_code(sim, query_param(browser.header("Location"), "code")).status == 200);

  std::string denied = sim.authorize_as(authorize_request(sim, {}, state), "bob@example.com", "deny");
  BOOST_TEST(query_param(denied, "error") == "access_denied");
  BOOST_TEST(query_param(denied, "state") == state);
  BOOST_TEST(query_param(denied, "code").empty());
  BOOST_TEST(sim.counters()["authorize"]["denied"] == 1);
}

BOOST_AUTO_TEST_CASE(bad_client_or_redirect_uri_gets_an_error_page_never_a_redirect) {
  SimProcess sim({"--redirect-uri", "http://127.0.0.1:9999/cb", "--redirect-uri", kRedirect});
  auto url = [&](const std::string& client, const std::string& redirect) {
    return sim.authorize_url() + "?" +
           fb::test::query_string({{"client_id", client}, {"redirect_uri", redirect}, {"response_type", "code"}});
  };
  HttpReply r = http_get(url("other-client", kRedirect));
  BOOST_TEST(r.status == 400);
  BOOST_TEST(!r.has_header("Location"));
  BOOST_TEST(r.body.find("unknown client_id") != std::string::npos);
  // Exact match only: a trailing slash or another path is a different URI.
  for (const std::string& bad : {kRedirect + "/", std::string("http://127.0.0.1:8787/oauth/callback?x=1"),
                                 std::string("http://evil.test/cb")}) {
    HttpReply e = http_get(url("sim-client", bad));
    BOOST_TEST(e.status == 400, bad);
    BOOST_TEST(!e.has_header("Location"));
  }
  BOOST_TEST(http_get(url("sim-client", "http://127.0.0.1:9999/cb")).status == 200);  // second registered URI
}

BOOST_AUTO_TEST_CASE(bad_response_type_or_scope_redirects_with_an_error) {
  SimProcess sim;
  Fields f = {{"client_id", "sim-client"}, {"redirect_uri", kRedirect}, {"response_type", "token"}, {"state", "s"}};
  HttpReply r = http_get(sim.authorize_url() + "?" + fb::test::query_string(f));
  BOOST_TEST(r.status == 302);
  BOOST_TEST(query_param(r.header("Location"), "error") == "unsupported_response_type");
  BOOST_TEST(query_param(r.header("Location"), "state") == "s");
  f[2].second = "code";
  f.emplace_back("scope", "admin");
  r = http_get(sim.authorize_url() + "?" + fb::test::query_string(f));
  BOOST_TEST(query_param(r.header("Location"), "error") == "invalid_scope");
}

BOOST_AUTO_TEST_CASE(code_exchange_returns_the_documented_token_response) {
  SimProcess sim({"--token-ttl", "123"});
  HttpReply r = exchange_code(sim, get_code(sim));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  auto j = r.json();
  BOOST_TEST(j["access_token"].get<std::string>().size() > 20);
  BOOST_TEST(j["refresh_token"].get<std::string>().size() > 20);
  BOOST_TEST(j["access_token"] != j["refresh_token"]);
  BOOST_TEST(j["expires_in"] == 123);
  BOOST_TEST(j["token_type"] == "Bearer");
  BOOST_TEST(j["scope"] == "public_api");
  BOOST_TEST(r.header("Cache-Control") == "no-store");
  // The token works on the API and belongs to the approving user.
  HttpReply m = api_get(sim, "/meetings", bearer(j["access_token"]));
  BOOST_TEST(m.status == 200);
  auto c = sim.counters();
  BOOST_TEST(c["token_requests"]["authorization_code"] == 1);
}

BOOST_AUTO_TEST_CASE(json_body_and_other_content_types_are_rejected_with_400) {
  SimProcess sim;
  std::string code = get_code(sim);
  nlohmann::json body = {{"grant_type", "authorization_code"}, {"code", code}, {"client_id", "sim-client"},
                         {"client_secret", "sim-secret"}, {"redirect_uri", kRedirect}};
  HttpReply r = fb::test::http_post_json(sim.token_url(), body);
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.json()["error"] == "invalid_request");
  fb::test::HttpCall call;
  call.method = "POST";
  call.url = sim.token_url();
  call.body = fb::test::query_string({{"grant_type", "authorization_code"}, {"code", code}});
  call.content_type = "text/plain";
  BOOST_TEST(fb::test::http_request(call).status == 400);
  // The code was not consumed by the rejected calls.
  BOOST_TEST(exchange_code(sim, code).status == 200);
}

BOOST_AUTO_TEST_CASE(wrong_or_missing_client_credentials_get_invalid_client_401) {
  SimProcess sim;
  std::string code = get_code(sim);
  Fields f = {{"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", kRedirect}};
  Fields wrong_secret = f;
  wrong_secret.insert(wrong_secret.end(), {{"client_id", "sim-client"}, {"client_secret", "nope"}});
  Fields wrong_id = f;
  wrong_id.insert(wrong_id.end(), {{"client_id", "other"}, {"client_secret", "sim-secret"}});
  for (const Fields& bad : {wrong_secret, wrong_id, f}) {
    HttpReply r = token_call(sim, bad);
    BOOST_TEST(r.status == 401);
    BOOST_TEST(r.json()["error"] == "invalid_client");
  }
  // HTTP Basic is not accepted in place of body credentials (fathom-api.md 1.3).
  HttpReply basic = http_post_form(sim.token_url(), f,
                                   {{"Authorization", "Basic " + fb::detail::base64_encode("sim-client:sim-secret")}});
  BOOST_TEST(basic.status == 401);
  BOOST_TEST(sim.counters()["token_errors"]["invalid_client"] == 4);
}

BOOST_AUTO_TEST_CASE(unsupported_grant_and_missing_fields) {
  SimProcess sim;
  HttpReply r = token_call(sim, {{"grant_type", "client_credentials"}, {"client_id", "sim-client"}, {"client_secret", "sim-secret"}});
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.json()["error"] == "unsupported_grant_type");
  r = token_call(sim, {{"grant_type", "authorization_code"}, {"client_id", "sim-client"}, {"client_secret", "sim-secret"}});
  BOOST_TEST(r.json()["error"] == "invalid_request");
  r = exchange_code(sim, "fa_code_made_up");
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.json()["error"] == "invalid_grant");
}

BOOST_AUTO_TEST_CASE(codes_are_single_use) {
  SimProcess sim;
  std::string code = get_code(sim);
  BOOST_TEST(exchange_code(sim, code).status == 200);
  HttpReply again = exchange_code(sim, code);
  BOOST_TEST(again.status == 400);
  BOOST_TEST(again.json()["error"] == "invalid_grant");
}

BOOST_AUTO_TEST_CASE(codes_expire_after_code_ttl) {
  SimProcess sim({"--code-ttl", "1"});
  std::string code = get_code(sim);
  // A wrong redirect_uri is refused without consuming the code; once expired, expiry is reported.
  Fields wrong = {{"grant_type", "authorization_code"}, {"code", code}, {"client_id", "sim-client"},
                  {"client_secret", "sim-secret"}, {"redirect_uri", kRedirect + "x"}};
  BOOST_TEST(token_call(sim, wrong).json()["error_description"] == "redirect_uri does not match the authorization request");
  BOOST_TEST(wait_until([&] {
    return token_call(sim, wrong).json()["error_description"] == "authorization code expired";
  }));
  HttpReply r = exchange_code(sim, code);
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.json()["error"] == "invalid_grant");
}

BOOST_AUTO_TEST_CASE(redirect_uri_must_match_the_authorize_request_exactly) {
  SimProcess sim;
  std::string code = get_code(sim);
  for (const std::string& other : {kRedirect + "/", std::string(""), std::string("http://localhost:8787/oauth/callback")}) {
    Fields f = {{"grant_type", "authorization_code"}, {"code", code}, {"client_id", "sim-client"},
                {"client_secret", "sim-secret"}};
    if (!other.empty()) f.emplace_back("redirect_uri", other);
    HttpReply r = token_call(sim, f);
    BOOST_TEST(r.status == 400);
    BOOST_TEST(r.json()["error"] == "invalid_grant");
  }
  BOOST_TEST(exchange_code(sim, code).status == 200);
}

BOOST_AUTO_TEST_CASE(refresh_rotates_and_a_spent_refresh_token_is_invalid_grant) {
  SimProcess sim;
  auto first = login(sim);
  HttpReply r = refresh(sim, first["refresh_token"]);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  auto second = r.json();
  BOOST_TEST(second["refresh_token"] != first["refresh_token"]);
  BOOST_TEST(second["access_token"] != first["access_token"]);
  BOOST_TEST(second["expires_in"] == 86400);

  HttpReply reuse = refresh(sim, first["refresh_token"]);
  BOOST_TEST(reuse.status == 400);
  BOOST_TEST(reuse.json()["error"] == "invalid_grant");
  // Without revoke_grant_on_reuse the rotated pair keeps working.
  BOOST_TEST(api_get(sim, "/meetings", bearer(second["access_token"])).status == 200);
  BOOST_TEST(api_get(sim, "/meetings", bearer(first["access_token"])).status == 200);  // old access token survives
  HttpReply third = refresh(sim, second["refresh_token"]);
  BOOST_TEST(third.status == 200);
  auto c = sim.counters();
  BOOST_TEST(c["token_requests"]["refresh_token"] == 3);
  BOOST_TEST(c["token_errors"]["invalid_grant"] == 1);
}

BOOST_AUTO_TEST_CASE(revoke_grant_on_reuse_kills_every_token_of_the_grant) {
  SimProcess sim({"--revoke-grant-on-reuse"});
  auto first = login(sim);
  auto second = refresh(sim, first["refresh_token"]).json();
  BOOST_TEST(refresh(sim, first["refresh_token"]).json()["error"] == "invalid_grant");
  BOOST_TEST(api_get(sim, "/meetings", bearer(second["access_token"])).status == 401);
  BOOST_TEST(refresh(sim, second["refresh_token"]).json()["error"] == "invalid_grant");
  // Another login makes a new grant that works.
  BOOST_TEST(api_get(sim, "/meetings", bearer(login(sim)["access_token"])).status == 200);
}

// --token-late: the work is done first (the refresh token is spent at once), only the answer waits.
BOOST_AUTO_TEST_CASE(token_late_spends_the_token_at_once_and_holds_the_answer) {
  SimProcess sim({"--token-late", "1500", "--token-late-count", "1"});
  sim.config({{"token_late_count", 0}});  // the login is answered in time
  auto first = login(sim);
  sim.config({{"token_late_count", 1}});
  HttpReply late;
  std::thread slow([&] { late = refresh(sim, first["refresh_token"]); });
  BOOST_TEST(wait_until([&] { return sim.counters()["token_requests"].value("refresh_token", 0) == 1; }));
  // The answer is still held back, but the token is already spent.
  HttpReply again = refresh(sim, first["refresh_token"]);
  BOOST_TEST(again.json()["error"] == "invalid_grant");
  slow.join();
  BOOST_TEST(late.status == 200);
  BOOST_TEST(late.json().contains("refresh_token"));
  BOOST_TEST(sim.counters()["token_late_answers"] == 1);
  BOOST_TEST(sim.admin("GET", "/_sim/config")["token_late_count"] == 0);  // counted down
}

BOOST_AUTO_TEST_CASE(issuer_knob_adds_iss_to_authorization_responses) {
  SimProcess sim({"--issuer", "https://fathom.example"});
  std::string loc = sim.authorize_as(authorize_request(sim), "alice@example.com");
  BOOST_TEST(query_param(loc, "iss") == "https://fathom.example");
  std::string denied = sim.authorize_as(authorize_request(sim), "alice@example.com", "deny");
  BOOST_TEST(query_param(denied, "iss") == "https://fathom.example");
  sim.config({{"issuer", ""}});
  BOOST_TEST(sim.authorize_as(authorize_request(sim), "alice@example.com").find("iss=") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(revoke_access_on_refresh_switch) {
  SimProcess sim;
  sim.config({{"revoke_access_on_refresh", true}});
  auto first = login(sim);
  auto second = refresh(sim, first["refresh_token"]).json();
  BOOST_TEST(api_get(sim, "/meetings", bearer(first["access_token"])).status == 401);
  BOOST_TEST(api_get(sim, "/meetings", bearer(second["access_token"])).status == 200);
}

BOOST_AUTO_TEST_CASE(access_tokens_expire_after_token_ttl_and_refresh_still_works) {
  SimProcess sim({"--token-ttl", "1"});
  auto t = login(sim);
  BOOST_TEST(t["expires_in"] == 1);
  BOOST_TEST(wait_until([&] { return api_get(sim, "/meetings", bearer(t["access_token"])).status == 401; }));
  HttpReply r = api_get(sim, "/meetings", bearer(t["access_token"]));
  BOOST_TEST(r.json()["message"] == "access token expired");
  auto fresh = refresh(sim, t["refresh_token"]).json();  // an unused refresh token does not expire
  BOOST_TEST(api_get(sim, "/meetings", bearer(fresh["access_token"])).status == 200);
}

BOOST_AUTO_TEST_CASE(admin_expire_and_revoke) {
  SimProcess sim;
  auto a = login(sim, "alice@example.com");
  auto b = login(sim, "bob@example.com");
  BOOST_TEST(sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}})["expired"] == 1);
  BOOST_TEST(api_get(sim, "/meetings", bearer(a["access_token"])).status == 401);
  BOOST_TEST(api_get(sim, "/meetings", bearer(b["access_token"])).status == 200);
  auto a2 = refresh(sim, a["refresh_token"]).json();
  BOOST_TEST(api_get(sim, "/meetings", bearer(a2["access_token"])).status == 200);

  BOOST_TEST(sim.admin("POST", "/_sim/grants/revoke", {{"user", "alice@example.com"}})["revoked_grants"] == 1);
  HttpReply r = api_get(sim, "/meetings", bearer(a2["access_token"]));
  BOOST_TEST(r.status == 401);
  BOOST_TEST(r.json()["message"] == "access token revoked");
  BOOST_TEST(refresh(sim, a2["refresh_token"]).json()["error"] == "invalid_grant");
  BOOST_TEST(api_get(sim, "/meetings", bearer(b["access_token"])).status == 200);
  auto grants = sim.admin("GET", "/_sim/grants");
  BOOST_TEST(grants.size() == 2u);
}

std::string s256(const std::string& verifier) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), d);
  return fb::detail::base64url_encode(d, sizeof d);
}

BOOST_AUTO_TEST_CASE(pkce_s256_and_plain) {
  SimProcess sim;
  const std::string verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";  // RFC 7636 appendix B
  BOOST_TEST(s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  std::string code = get_code(sim, "alice@example.com", {{"code_challenge", s256(verifier)}, {"code_challenge_method", "S256"}});
  HttpReply missing = exchange_code(sim, code);
  BOOST_TEST(missing.json()["error"] == "invalid_grant");
  HttpReply wrong = exchange_code(sim, code, {{"code_verifier", std::string(43, 'a')}});
  BOOST_TEST(wrong.json()["error"] == "invalid_grant");
  BOOST_TEST(exchange_code(sim, code, {{"code_verifier", verifier}}).status == 200);

  std::string plain = get_code(sim, "alice@example.com", {{"code_challenge", verifier}});  // method defaults to plain
  BOOST_TEST(exchange_code(sim, plain, {{"code_verifier", s256(verifier)}}).status == 400);
  BOOST_TEST(exchange_code(sim, plain, {{"code_verifier", verifier}}).status == 200);

  HttpReply bad_method = http_get(authorize_request(sim, {{"code_challenge", verifier}, {"code_challenge_method", "S512"}}));
  BOOST_TEST(query_param(bad_method.header("Location"), "error") == "invalid_request");
}

BOOST_AUTO_TEST_CASE(pkce_required_and_pkce_verify_switches) {
  SimProcess sim({"--pkce-required"});
  HttpReply r = http_get(authorize_request(sim));
  BOOST_TEST(r.status == 302);
  BOOST_TEST(query_param(r.header("Location"), "error") == "invalid_request");
  BOOST_TEST(query_param(r.header("Location"), "state") == "st-1");
  const std::string verifier(50, 'v');
  std::string code = get_code(sim, "alice@example.com", {{"code_challenge", s256(verifier)}, {"code_challenge_method", "S256"}});
  BOOST_TEST(exchange_code(sim, code, {{"code_verifier", verifier}}).status == 200);

  // pkce off (a server that ignores PKCE): a wrong verifier passes.
  sim.config({{"pkce_required", false}, {"pkce_verify", false}});
  std::string c2 = get_code(sim, "alice@example.com", {{"code_challenge", s256(verifier)}, {"code_challenge_method", "S256"}});
  BOOST_TEST(exchange_code(sim, c2, {{"code_verifier", std::string(50, 'w')}}).status == 200);
  BOOST_TEST(exchange_code(sim, get_code(sim)).status == 200);  // and no challenge at all is fine
}

BOOST_AUTO_TEST_CASE(token_endpoint_is_rate_limited_per_client_id) {
  SimProcess sim({"--token-rate-limit", "3", "--retry-after"});
  for (int i = 0; i < 3; ++i) {
    HttpReply r = exchange_code(sim, "fa_code_unknown");
    BOOST_TEST(r.status == 400);
    BOOST_TEST(r.header("RateLimit-Limit") == "3");
    BOOST_TEST(r.header("RateLimit-Remaining") == std::to_string(2 - i));
  }
  HttpReply limited = exchange_code(sim, "fa_code_unknown");
  BOOST_TEST(limited.status == 429);
  BOOST_TEST(limited.header("RateLimit-Remaining") == "0");
  BOOST_TEST(std::stoi(limited.header("RateLimit-Reset")) >= 1);
  BOOST_TEST(std::stoi(limited.header("RateLimit-Reset")) <= 60);
  BOOST_TEST(limited.header("Retry-After") == limited.header("RateLimit-Reset"));
  // Another client_id has its own budget (it then fails authentication, not the limit).
  HttpReply other = token_call(sim, {{"grant_type", "refresh_token"}, {"refresh_token", "x"}, {"client_id", "other"},
                                     {"client_secret", "x"}});
  BOOST_TEST(other.status == 401);
  BOOST_TEST(sim.counters()["token_rate_limited"] == 1);
}

BOOST_AUTO_TEST_SUITE_END()
