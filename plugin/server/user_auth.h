// user_auth.h: who a browser request is from, by the CRM's own session JWT (user_api settings in
// config.h). Used by the user-scoped routes (user_routes.h).
//
//   auto verifier = UserTokenVerifier::create(config.user_api);   // reads the JWKS file once
//   UserTokenCheck c = (*verifier)->verify(req.header("Authorization"), now_s);
//   if (!c.ok()) -> 401 {"error": "unauthenticated", "reason": c.reason, "message": c.message}
//
// Accepted: a compact JWS whose header `alg` is HS256 (with user_api.jwt_secret) or RS256/ES256
// (with a key of that type from user_api.jwks_file, chosen by `kid` when the token names one). The
// algorithm is decided by the key, never by the token alone: `alg: none`, an HS256 token against
// a JWKS-only setup, or an RS256 token claiming an EC key are refused before any signature check
// (so a public key can never be used as an HMAC secret). libjwt checks the signature. Then:
// `exp` is required and `exp`/`nbf` are compared with now allowing user_api.leeway_s; `iss` must
// equal user_api.issuer; `aud` (a string or an array) must contain user_api.audience; the tenant
// and user claims (user_api.tenant_claim, user_claim; strings or integers) are required and the
// team claim optional, each checked as any identifier (principal.h).
//
// Key rotation: a token whose kid (or alg) names no loaded key makes the verifier look at the
// JWKS file again; when the file changed since it was read, it is reloaded (a file that no longer
// parses is logged and the keys already loaded stay). A CRM publishes its next key in the file
// before signing with it.
//
// Thread-safety: verify() is const and may be called from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/principal.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

// The outcome of one check. reason is a stable machine word, message a sentence for people.
struct UserTokenCheck {
  std::string reason;  // "" when accepted; else missing_token, malformed_token, alg_not_allowed,
                       // unknown_key, bad_signature, expired, not_yet_valid, wrong_issuer,
                       // wrong_audience, missing_claim, invalid_claim
  std::string message;
  Principal principal;  // when accepted
  bool ok() const { return reason.empty(); }
};

class UserTokenVerifier {
 public:
  // kConfig naming the file or the key when user_api.jwks_file cannot be read or holds a key that
  // is neither RSA nor EC P-256; keys for other uses ("use": "enc") are skipped.
  static Result<std::unique_ptr<UserTokenVerifier>> create(const UserApiConfig& config);

  // authorization: the request's Authorization header ("Bearer <jwt>"). now_s: Unix seconds.
  UserTokenCheck verify(std::string_view authorization, int64_t now_s) const;

  struct Key {
    std::string kid;
    std::string alg;  // "RS256" or "ES256"
    std::string pem;  // SubjectPublicKeyInfo, as libjwt takes it
  };

 private:
  explicit UserTokenVerifier(const UserApiConfig& config) : config_(config) {}
  using Keys = std::shared_ptr<const std::vector<Key>>;
  Keys keys() const;
  // Reloads the JWKS file when its modification time changed; true when new keys were loaded.
  bool reload_if_changed() const;

  UserApiConfig config_;
  mutable std::mutex mu_;
  mutable Keys keys_;                                     // guarded by mu_
  mutable std::filesystem::file_time_type loaded_mtime_;  // guarded by mu_
};

// The JWKS document's keys as PEM public keys (exposed for the tests). kConfig on a bad key.
Result<std::vector<UserTokenVerifier::Key>> parse_jwks(const std::string& jwks_json, const std::string& origin);

}  // namespace fb::detail
