// The OAuth callback: query parsing, state checking and the token answer, over a real SQLite
// store (in memory). Input: the callback query, where each "@S" becomes a state this run just
// issued (so the fuzzer reaches past the state check), optionally followed by a newline and the
// body the token endpoint answers with (status 200). Properties:
//  - complete() never throws, crashes or hangs, and a failure always has an error and a reason;
//  - success needs an issued state and a code, and the same state never succeeds twice;
//  - a query without an issued state never gets past the state check (no token call is made).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/encoding.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"
#include "oauth/oauth_flow.h"
#include "oauth/token_endpoint.h"
#include "store/db.h"

using namespace fb;
using namespace fb::detail;

namespace {

struct FakeTokenServer final : HttpTransport {
  std::string body;
  int calls = 0;
  Result<HttpResponse> send(const HttpRequest&) override {
    ++calls;
    HttpResponse r;
    r.status = 200;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = body;
    return r;
  }
};

struct Stack {
  Config config;
  FakeClock clock;
  FakeTokenServer transport;
  std::unique_ptr<Db> db;
  std::unique_ptr<Sealer> sealer;
  std::unique_ptr<IntegrationStore> store;
  std::unique_ptr<TokenEndpoint> endpoint;
  std::unique_ptr<OAuthFlow> flow;

  Stack() {
    config.fathom.client_id = "fuzz-client";
    config.fathom.client_secret = "fuzz-secret";
    config.fathom.redirect_uri = "http://127.0.0.1:8787/oauth/callback";
    config.fathom.authorize_url = "http://127.0.0.1:9/external/v1/oauth2/authorize";
    config.fathom.token_url = "http://127.0.0.1:9/external/v1/oauth2/token";
    config.fathom.api_base = "http://127.0.0.1:9/external/v1";
    config.frontend.url = "https://crm.example.test";
    config.tokens.key = "k1:" + base64_encode(std::string(32, 'k'));
    config.tokens.refresh_max_attempts = 1;
    db = std::move(Db::open(":memory:")).value();
    sealer = std::move(make_sealer(config.tokens)).value();
    store = std::make_unique<IntegrationStore>(*db, *sealer, clock);
    if (!store->migrate().ok()) std::abort();
    endpoint = std::make_unique<TokenEndpoint>(transport, clock, system_random(),
                                               TokenEndpointOptions::from_config(config));
    flow = std::make_unique<OAuthFlow>(OAuthFlowOptions::from_config(config), *store, *endpoint, transport, nullptr,
                                       clock);
  }
};

const char* kDefaultToken =
    R"({"access_token":"at","refresh_token":"rt","expires_in":3600,"token_type":"Bearer","scope":"public_api"})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (set_log_level(LogLevel::kOff), true);
  (void)quiet;
  static std::unique_ptr<Stack> stack;
  static int runs = 0;
  if (!stack || ++runs % 2000 == 0) stack = std::make_unique<Stack>();  // bounded database size

  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view query_in = in.substr(0, nl);
  stack->transport.body = nl == std::string_view::npos ? kDefaultToken : std::string(in.substr(nl + 1));

  Principal who{"tenant-1", "user-1", ""};
  bool used_state = query_in.find("@S") != std::string_view::npos;
  std::string query;
  if (used_state) {
    auto start = stack->flow->start(who, (size & 1) ? CallbackMode::kRedirect : CallbackMode::kPopup);
    if (!start.ok()) std::abort();
    std::string url = start->url;
    size_t at = url.find("state=");
    if (at == std::string::npos) std::abort();
    std::string state = url.substr(at + 6, url.find('&', at) - (at + 6));
    for (size_t i = 0; i < query_in.size(); ++i) {
      if (query_in.compare(i, 2, "@S") == 0) {
        query += state;
        ++i;
      } else {
        query += query_in[i];
      }
    }
  } else {
    query = std::string(query_in);
  }

  const Principal* caller = (size % 3 == 0) ? &who : nullptr;
  int calls_before = stack->transport.calls;
  CallbackResult r = stack->flow->complete(query, caller);
  if (!r.ok && (r.error.empty() || r.reason.empty())) std::abort();
  if (!used_state && stack->transport.calls != calls_before) {
    std::fprintf(stderr, "a query without an issued state reached the token endpoint: %s\n", query.c_str());
    std::abort();
  }
  if (r.ok) {
    if (!used_state || r.integration_id <= 0) std::abort();
    CallbackResult again = stack->flow->complete(query, caller);
    if (again.ok || again.error != "state_used") {
      std::fprintf(stderr, "a state succeeded twice: %s\n", query.c_str());
      std::abort();
    }
    (void)stack->flow->popup_page_html(r);
  }
  (void)stack->flow->popup_page_html(r);
  (void)stack->flow->redirect_location(r);
  (void)url_origin(query);
  return 0;
}
