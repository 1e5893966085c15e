// token_endpoint.h: the client side of Fathom's OAuth token endpoint (fathom-api.md 1.3,
// RFC 6749 sections 4.1.3 and 6).
//
// Requests are application/x-www-form-urlencoded with client_id and client_secret in the body.
//
// Both grants spend what they send: a code is single use (RFC 6749 4.1.2) and a refresh token
// rotates (fathom-api.md 1.3), and a server with replay detection revokes the whole grant when a
// spent one comes back. So:
//   - exchange_code sends the code exactly once, within one time bound (the OAuth callback's),
//     and never re-sends it, whatever happens; the user starts again with a fresh code.
//   - refresh retries what certainly did not reach the server or was refused before any work
//     (connection failures, 429 and 5xx other than 504) with exponential backoff and full jitter
//     (a random wait in [0, min(backoff_max, backoff_base * 2^n)]), at most max_attempts sends; a
//     Retry-After header is honoured instead of the jittered wait, up to max_retry_after_ms
//     (beyond that the call gives up at once with kRateLimited).
//   - A refresh whose outcome is unknown (sent, no answer: the transport's kTimeout, or a 504 from
//     a gateway) may have rotated the token on the server. It gets exactly one confirming send
//     with the same token, and no more in that call: a 2xx means the grant lives; invalid_grant
//     means the lost answer had rotated it (the caller treats the grant as lost); no answer again
//     leaves the outcome unknown (stats.outcome_unknown) and the caller must not hand out the old
//     access token as valid nor send the token again blindly.
//
// Result codes:
//   kInvalidGrant      the server said invalid_grant (code or refresh token dead, reused, revoked)
//   kUnauthenticated   invalid_client or HTTP 401: the app's client_id/client_secret are wrong (a
//                      configuration problem; the message says so and names the settings)
//   kConfig            fathom.client_id or fathom.client_secret is not set (nothing was sent)
//   kInvalidArgument   another 4xx (invalid_request, unsupported_grant_type, ...)
//   kUnavailable / kTimeout / kRateLimited   network errors, 5xx / no answer / 429
//   kMalformed         a 2xx whose body lacks access_token (one without a usable expires_in is
//                      accepted with an assumed lifetime of 3600 s, and a warning is logged). A
//                      token_type other than Bearer is returned in the grant, not refused here: a
//                      refresh answer has rotated the refresh token, which the caller must keep.
//   kCancelled         before_attempt refused to go on (e.g. the refresh lease was lost)
// Messages carry the HTTP status and the OAuth error code and description, scrubbed of the
// code, refresh token and client secret; never a token.
//
// Thread-safe: no mutable state besides the transport, which is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "core/secret.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"

namespace fb::detail {

struct TokenEndpointOptions {
  std::string token_url;
  std::string client_id;
  SecretString client_secret;
  int max_attempts = 4;
  int backoff_base_ms = 500;
  int backoff_max_ms = 30000;
  int64_t max_retry_after_ms = 120000;
  // fathom.token_url, client_id, client_secret and the tokens.refresh_* settings.
  static TokenEndpointOptions from_config(const Config& config);
};

// What happened on the wire during one call, for logs and tests.
struct TokenCallStats {
  int attempts = 0;             // sends made
  int64_t waited_ms = 0;        // total backoff slept
  int last_http_status = 0;     // 0 when the last attempt got no HTTP answer
  std::string oauth_error;      // the last OAuth "error" value, "" when none
  bool outcome_unknown = false; // a send got no answer: the server may have spent what it carried
};

class TokenEndpoint {
 public:
  // transport, clock and random must outlive this object.
  TokenEndpoint(HttpTransport& transport, Clock& clock, Random& random, TokenEndpointOptions options);

  // Called before every send; a non-ok Status stops the call with that Status (code kept).
  using BeforeAttempt = std::function<Status(int attempt)>;

  // grant_type=authorization_code, sent once. code_verifier empty: no PKCE. timeout_ms > 0 bounds
  // the connect, write and read waits of the one request (else the transport's timeouts).
  Result<TokenGrant> exchange_code(const SecretString& code, const std::string& redirect_uri,
                                   const SecretString& code_verifier, TokenCallStats* stats = nullptr,
                                   int timeout_ms = 0);
  // grant_type=refresh_token. A 2xx answer without a usable access token is still returned (with
  // TokenGrant::unusable set and whatever refresh token it carried): the server may have rotated.
  Result<TokenGrant> refresh(const SecretString& refresh_token, TokenCallStats* stats = nullptr,
                             const BeforeAttempt& before_attempt = {});

  const TokenEndpointOptions& options() const { return options_; }

 private:
  Result<TokenGrant> post(const char* grant_type, std::vector<std::pair<std::string, std::string>> fields,
                          const std::vector<const SecretString*>& scrub, TokenCallStats* stats,
                          const BeforeAttempt& before_attempt, int max_attempts, int timeout_ms);

  HttpTransport& transport_;
  Clock& clock_;
  Random& random_;
  const TokenEndpointOptions options_;
};

// Whether a token response's token_type is one this bridge can use: "Bearer" in any case (RFC
// 6749 5.1: case-insensitive), or absent (Fathom's is unverified). RFC 6749 7.1: a client must not
// use a token of a type it does not understand, and every token is sent as a Bearer token.
bool is_bearer_token_type(std::string_view token_type);

// Replaces every occurrence of each non-empty secret in text with "[redacted]".
std::string scrub_secrets(std::string text, const std::vector<const SecretString*>& secrets);

// The wait before retry number `retry` (0-based) with full jitter: uniform in
// [0, min(max_ms, base_ms * 2^retry)].
int64_t full_jitter_backoff_ms(int retry, int base_ms, int max_ms, Random& random);

}  // namespace fb::detail
