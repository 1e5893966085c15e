// oauth_flow.h: connecting a CRM user to Fathom (authorization-code flow, RFC 6749 4.1, with
// optional PKCE S256, RFC 7636), connecting with an API key, and disconnecting.
//
//   auto start = flow.start({"acme", "u42"}, CallbackMode::kPopup);   // open start->url
//   ... the browser comes back to fathom.redirect_uri?code=..&state=.. ...
//   CallbackResult r = flow.complete(query_string);
//   serve flow.popup_page_html(r)            (popup mode), or
//   redirect to *flow.redirect_location(r)   (redirect mode; r.mode says which was asked for)
//
// State: 256 random bits (base64url) behind a one-letter mode prefix; only its SHA-256 is stored
// (table oauth_states), bound to tenant, user and team, single use, expiring after
// tokens.state_ttl_s (default 600 s). complete() consumes it atomically before anything else, so a
// replayed, expired, forged or foreign state is refused and nothing is stored or exchanged.
//
// Threading: thread-safe. complete() makes a network call (the code exchange) without holding
// any lock. Logs never contain a state, code, token or secret (states appear as the first 8 hex
// digits of their hash).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/event_bus.h"
#include "core/principal.h"
#include "core/random.h"
#include "core/secret.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"
#include "oauth/token_endpoint.h"

namespace fb::detail {

enum class CallbackMode { kPopup, kRedirect };
const char* callback_mode_name(CallbackMode mode);  // "popup" / "redirect"

struct AuthorizeRequest {
  std::string url;         // the authorize URL to open in the user's browser
  int64_t expires_at = 0;  // Unix seconds; the state is refused from then on
  CallbackMode mode = CallbackMode::kPopup;
};

// The outcome of a callback. `error` is a short machine reason, `reason` a sentence for people.
//   error               code                 meaning
//   invalid_request     kInvalidArgument     malformed query, duplicated parameter, no code
//   state_missing       kInvalidArgument     no state parameter
//   state_unknown       kInvalidArgument     never issued by us (forged) or purged long ago
//   state_used          kFailedPrecondition  already consumed (a replay or a double submit)
//   state_expired       kFailedPrecondition  older than tokens.state_ttl_s
//   state_foreign       kPermissionDenied    issued to another tenant/user than the caller
//   access_denied       kCancelled           the user clicked Deny at Fathom
//   authorization_error kRejected            Fathom redirected with another OAuth error
//   iss_mismatch        kRejected            the response names another issuer (RFC 9207 mix-up)
//   iss_missing         kRejected            no iss although fathom.require_iss is on
//   invalid_grant       kInvalidGrant        Fathom refused the code (expired, used)
//   unsupported_token_type kMalformed        Fathom issued a token_type other than Bearer (RFC 6749
//                                            7.1: never used; nothing is stored)
//   configuration_error kConfig / kUnauthenticated  OAuth settings missing, or Fathom refused the
//                                            app's client_id/client_secret (invalid_client, 401)
//   token_exchange_failed  (the exchange's code)  network, 429/5xx, or no answer within
//                                            fathom.callback_timeout_ms at the token endpoint
//   storage_failed      (the store's code)   the database write failed
struct CallbackResult {
  bool ok = false;
  int64_t integration_id = 0;
  bool reconnected = false;  // an existing integration got new tokens
  CallbackMode mode = CallbackMode::kPopup;
  Code code = Code::kOk;
  std::string error;
  std::string reason;
  std::string tenant_id;  // known once the state was valid
  std::string user_id;
};

struct OAuthFlowOptions {
  std::string client_id;
  std::string redirect_uri;
  std::string authorize_url;
  std::string api_base;
  std::string scope = "public_api";
  bool use_pkce = false;
  int state_ttl_s = 600;
  std::string frontend_url;   // frontend.url: redirect target base and the popup's message origin
  std::string success_path = "/settings/integrations/fathom";
  int64_t popup_close_ms = 1500;
  std::string issuer;            // fathom.issuer ("" = the origin of authorize_url)
  bool require_iss = false;      // fathom.require_iss
  int callback_timeout_ms = 15000;  // fathom.callback_timeout_ms: bound on the code exchange
  static OAuthFlowOptions from_config(const Config& config);
};

// RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))).
std::string pkce_challenge_s256(std::string_view code_verifier);
// Hex SHA-256 of a state value: the only form in which a state is stored.
std::string state_hash(std::string_view state);
// "scheme://host[:port]" of an http(s) URL, with the port only when not the scheme's default
// (the form browsers use for postMessage target origins). kInvalidArgument when not a URL.
Result<std::string> url_origin(std::string_view url);

class OAuthFlow {
 public:
  // All references must outlive the flow; events may be null.
  OAuthFlow(OAuthFlowOptions options, IntegrationStore& store, TokenEndpoint& token_endpoint,
            HttpTransport& transport, EventBus* events, Clock& clock = system_clock(),
            Random& random = system_random());

  // The authorize URL for the principal. kInvalidArgument for a malformed principal, kConfig when
  // client_id, redirect_uri or frontend.url is missing or malformed.
  Result<AuthorizeRequest> start(const Principal& principal, CallbackMode mode);

  // Handles the callback's query string ("code=..&state=.."; a leading '?' is ignored).
  // Issuer (RFC 9207): an `iss` parameter must equal fathom.issuer, or when that is empty have
  // the origin of fathom.authorize_url; without `iss` the callback is refused only when
  // fathom.require_iss is on. The code is sent to the token endpoint once, within
  // fathom.callback_timeout_ms, and never re-sent. caller,
  // when the callback request carries a CRM session, must be the principal the state was issued
  // to (else state_foreign; the state is burnt, since it has leaked). Never throws; see
  // CallbackResult for the reasons. On success emits "connected" (and "connection_recovered"
  // when the integration was in reconnect_required or failing) on the event bus.
  CallbackResult complete(std::string_view query, const Principal* caller = nullptr);

  // The popup callback page: Fathom purple (#5636D3), the outcome in HTML-escaped text, a script
  // that posts {source: 'fathom-bridge', status: 'connected'|'error', error?} to window.opener
  // with the target origin of frontend.url (never '*'), then closes the window after
  // popup_close_ms. Without an opener it stays open with a link back to the frontend.
  // Serve it with Content-Type text/html; charset=utf-8 and Cache-Control: no-store.
  std::string popup_page_html(const CallbackResult& result) const;
  // frontend.url + success_path + "?fathom=connected" or "?fathom=error&reason=<error>".
  // kConfig when frontend.url is not set.
  Result<std::string> redirect_location(const CallbackResult& result) const;

  // Connects with a per-user API key (kind api_key): checks it with GET {api_base}/teams using
  // X-Api-Key, then stores it sealed (a reconnect replaces an existing integration's credentials).
  // kUnauthenticated when Fathom rejects the key, kRateLimited / kUnavailable when Fathom could
  // not answer, kInvalidArgument for an empty or non-printable key. Emits "connected".
  Result<int64_t> connect_api_key(const Principal& principal, const SecretString& api_key);

  // Deletes the integration's stored credentials, marks it disconnected (is_active 0), audits it
  // and emits "disconnected". kNotFound when it is not the principal's. The Fathom webhooks must
  // be deleted before (the caller needs the credential for that).
  Status disconnect(const Principal& principal, int64_t integration_id);

  // Deletes states that expired more than a day ago (start() also does this). Returns how many.
  Result<int> purge_states();

  // Checks the settings start() and complete() need (client_id, client_secret, redirect_uri,
  // authorize_url, frontend.url, state_ttl_s): kConfig naming the setting. Hosts using OAuth may call it at startup so a
  // missing FRONTEND_URL fails at start rather than at the first connect.
  Status check_config() const;

  const OAuthFlowOptions& options() const { return options_; }

 private:
  struct ConsumedState;
  CallbackResult fail(CallbackResult r, Code code, const char* error, std::string reason) const;
  void audit(int64_t id, const std::string& tenant, const std::string& user, const std::string& event,
             const std::string& detail);
  Status emit(const std::string& type, const std::string& tenant, const std::string& user, int64_t id,
            const std::string& detail) const;

  const OAuthFlowOptions options_;
  IntegrationStore& store_;
  TokenEndpoint& token_endpoint_;
  HttpTransport& transport_;
  EventBus* events_;
  Clock& clock_;
  Random& random_;
};

}  // namespace fb::detail
