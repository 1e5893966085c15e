#include "server/user_auth.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/encoding.h"

namespace fb::detail {
namespace {

using nlohmann::json;

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using BldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using CtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using JwtPtr = std::unique_ptr<jwt_t, Deleter<jwt_t, jwt_free>>;
void bio_free(BIO* b) { BIO_free(b); }
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, bio_free>>;

// A JWK member holding base64url bytes; "" when absent or not base64url.
std::string jwk_bytes(const json& k, const char* name) {
  if (!k.contains(name) || !k[name].is_string()) return "";
  return base64url_decode(k[name].get<std::string>()).value_or("");
}

// The public key described by params (type "RSA" or "EC") as a PEM SubjectPublicKeyInfo.
std::string pem_of(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  CtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return "";
  }
  PkeyPtr key(raw);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string rsa_pem(const std::string& n, const std::string& e) {
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  BldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return "";
  }
  return pem_of("RSA", bld.get());
}

std::string ec_p256_pem(const std::string& x, const std::string& y) {
  std::string point = std::string(1, '\x04') + x + y;  // uncompressed point (SEC 1)
  BldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    return "";
  }
  return pem_of("EC", bld.get());
}

UserTokenCheck refuse(std::string reason, std::string message) {
  UserTokenCheck c;
  c.reason = std::move(reason);
  c.message = std::move(message);
  return c;
}

// A claim that names an identifier: a string, or an integer written in decimal.
std::optional<std::string> identifier_claim(const json& claims, const std::string& name) {
  if (!claims.contains(name)) return std::nullopt;
  const json& v = claims[name];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return std::string();  // present but unusable: invalid_claim below
}

}  // namespace

Result<std::vector<UserTokenVerifier::Key>> parse_jwks(const std::string& jwks_json, const std::string& origin) {
  json doc = json::parse(jwks_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return Status::Config(origin + " is not a JWKS document ({\"keys\": [...]})");
  }
  std::vector<UserTokenVerifier::Key> out;
  size_t index = 0;
  for (const json& k : doc["keys"]) {
    const std::string where = origin + " key " + std::to_string(index++);
    if (!k.is_object()) return Status::Config(where + " is not an object");
    if (k.value("use", "sig") != "sig") continue;
    const std::string kty = k.value("kty", "");
    UserTokenVerifier::Key key;
    key.kid = k.contains("kid") && k["kid"].is_string() ? k["kid"].get<std::string>() : "";
    if (kty == "RSA") {
      key.alg = "RS256";
      std::string n = jwk_bytes(k, "n"), e = jwk_bytes(k, "e");
      if (n.size() < 256) return Status::Config(where + ": RSA modulus 'n' missing or under 2048 bits");
      if (e.empty()) return Status::Config(where + ": RSA exponent 'e' missing");
      key.pem = rsa_pem(n, e);
    } else if (kty == "EC") {
      key.alg = "ES256";
      if (k.value("crv", "") != "P-256") return Status::Config(where + ": only EC curve P-256 (ES256) is supported");
      std::string x = jwk_bytes(k, "x"), y = jwk_bytes(k, "y");
      if (x.size() != 32 || y.size() != 32) return Status::Config(where + ": EC 'x' and 'y' must be 32 bytes each");
      key.pem = ec_p256_pem(x, y);
    } else {
      return Status::Config(where + ": kty '" + kty + "' is not supported (RSA or EC)");
    }
    if (k.contains("alg") && k["alg"] != key.alg) {
      return Status::Config(where + ": alg " + k["alg"].dump() + " does not fit its key type (" + key.alg + ")");
    }
    if (key.pem.empty()) return Status::Config(where + ": not a valid " + kty + " public key");
    out.push_back(std::move(key));
  }
  if (out.empty()) return Status::Config(origin + " holds no signing key");
  return out;
}

namespace {

// The keys of the JWKS file at path, and the file's modification time before it was read.
Result<std::vector<UserTokenVerifier::Key>> load_jwks_file(const std::string& path, std::filesystem::file_time_type* mtime) {
  std::error_code ec;
  *mtime = std::filesystem::last_write_time(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return Status::Config("cannot read user_api.jwks_file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_jwks(text.str(), "user_api.jwks_file '" + path + "'");
}

}  // namespace

Result<std::unique_ptr<UserTokenVerifier>> UserTokenVerifier::create(const UserApiConfig& config) {
  std::unique_ptr<UserTokenVerifier> v(new UserTokenVerifier(config));
  std::vector<Key> keys;
  if (!config.jwks_file.empty()) {
    FB_ASSIGN(keys, load_jwks_file(config.jwks_file, &v->loaded_mtime_));
  }
  v->keys_ = std::make_shared<const std::vector<Key>>(std::move(keys));
  return v;
}

UserTokenVerifier::Keys UserTokenVerifier::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

bool UserTokenVerifier::reload_if_changed() const {
  if (config_.jwks_file.empty()) return false;
  std::lock_guard lock(mu_);
  std::error_code ec;
  if (std::filesystem::last_write_time(config_.jwks_file, ec) == loaded_mtime_ || ec) return false;
  std::filesystem::file_time_type mtime;
  auto loaded = load_jwks_file(config_.jwks_file, &mtime);
  if (!loaded.ok()) {
    FB_LOG(kWarn, "user_api") << "kept the loaded keys: " << loaded.status().message();
    loaded_mtime_ = mtime;  // not retried until the file changes again
    return false;
  }
  keys_ = std::make_shared<const std::vector<Key>>(std::move(*loaded));
  loaded_mtime_ = mtime;
  FB_LOG(kInfo, "user_api") << "reloaded " << keys_->size() << " key(s) from " << config_.jwks_file;
  return true;
}

UserTokenCheck UserTokenVerifier::verify(std::string_view authorization, int64_t now_s) const {
  authorization = trim_ows(authorization);
  if (authorization.empty()) return refuse("missing_token", "no Authorization header (Bearer <the CRM's session JWT>)");
  if (authorization.size() < 7 || !ascii_iequals(authorization.substr(0, 7), "Bearer ")) {
    return refuse("missing_token", "the Authorization header is not 'Bearer <token>'");
  }
  const std::string token(trim_ows(authorization.substr(7)));
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string::npos || token.find('.', dot2 + 1) != std::string::npos) {
    return refuse("malformed_token", "the token is not a compact JWS (header.payload.signature)");
  }
  auto header_text = base64url_decode(std::string_view(token).substr(0, dot1));
  json header = header_text ? json::parse(*header_text, nullptr, false) : json();
  if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string()) {
    return refuse("malformed_token", "the token's header is not a JSON object with an alg");
  }
  const std::string alg = header["alg"];
  const std::string kid = header.contains("kid") && header["kid"].is_string() ? header["kid"].get<std::string>() : "";

  // The keys this token may be checked with, decided by our configuration, not by the token.
  Keys keys = this->keys();  // held until the signature is checked
  std::vector<std::pair<const unsigned char*, int>> candidates;
  jwt_alg_t expected = JWT_ALG_INVAL;
  if (alg == "HS256" && !config_.jwt_secret.empty()) {
    expected = JWT_ALG_HS256;
    candidates.emplace_back(reinterpret_cast<const unsigned char*>(config_.jwt_secret.data()),
                            static_cast<int>(config_.jwt_secret.size()));
  } else if ((alg == "RS256" || alg == "ES256") && !config_.jwks_file.empty()) {
    expected = alg == "RS256" ? JWT_ALG_RS256 : JWT_ALG_ES256;
    auto pick = [&] {
      for (const Key& k : *keys) {
        if (k.alg == alg && (kid.empty() || k.kid == kid)) {
          candidates.emplace_back(reinterpret_cast<const unsigned char*>(k.pem.data()), static_cast<int>(k.pem.size()));
        }
      }
    };
    pick();
    if (candidates.empty() && reload_if_changed()) {  // a key the CRM published since
      keys = this->keys();
      pick();
    }
    if (candidates.empty()) {
      return refuse("unknown_key", "no " + alg + " key" + (kid.empty() ? "" : " with kid '" + kid + "'") +
                                       " in user_api.jwks_file");
    }
  } else {
    std::string allowed = config_.jwt_secret.empty() ? "" : "HS256";
    if (!config_.jwks_file.empty()) allowed += std::string(allowed.empty() ? "" : ", ") + "RS256, ES256";
    return refuse("alg_not_allowed", "alg '" + alg + "' is not accepted (accepted: " + allowed + ")");
  }

  JwtPtr jwt;
  for (const auto& [key, len] : candidates) {
    jwt_t* raw = nullptr;
    if (jwt_decode(&raw, token.c_str(), key, len) == 0 && raw) {
      jwt.reset(raw);
      break;
    }
    if (raw) jwt_free(raw);
  }
  if (!jwt || jwt_get_alg(jwt.get()) != expected) {
    return refuse("bad_signature", "the token's " + alg + " signature does not verify");
  }

  char* claims_text = jwt_get_grants_json(jwt.get(), nullptr);
  json claims = claims_text ? json::parse(claims_text, nullptr, false) : json();
  std::free(claims_text);
  if (!claims.is_object()) return refuse("malformed_token", "the token's payload is not a JSON object");

  const int64_t leeway = config_.leeway_s;
  if (!claims.contains("exp") || !claims["exp"].is_number()) return refuse("missing_claim", "the token has no numeric exp");
  const int64_t exp = claims["exp"].get<int64_t>();
  if (now_s > exp + leeway) {
    return refuse("expired", "the token expired at " + format_iso8601(exp) + " (leeway " + std::to_string(leeway) + " s)");
  }
  if (claims.contains("nbf")) {
    if (!claims["nbf"].is_number()) return refuse("invalid_claim", "the token's nbf is not a number");
    const int64_t nbf = claims["nbf"].get<int64_t>();
    if (now_s + leeway < nbf) {
      return refuse("not_yet_valid", "the token is not valid before " + format_iso8601(nbf) + " (leeway " +
                                         std::to_string(leeway) + " s)");
    }
  }
  if (!claims.contains("iss") || claims["iss"] != config_.issuer) {
    return refuse("wrong_issuer", "the token's iss is not the configured issuer (user_api.issuer)");
  }
  bool audience = false;
  if (claims.contains("aud") && claims["aud"].is_string()) audience = claims["aud"] == config_.audience;
  if (claims.contains("aud") && claims["aud"].is_array()) {
    for (const auto& a : claims["aud"]) audience = audience || a == config_.audience;
  }
  if (!audience) return refuse("wrong_audience", "the token's aud does not include '" + config_.audience + "'");

  UserTokenCheck ok;
  struct Field {
    const std::string& claim;
    std::string* out;
    bool required;
  } fields[] = {{config_.tenant_claim, &ok.principal.tenant_id, true},
                {config_.user_claim, &ok.principal.user_id, true},
                {config_.team_claim, &ok.principal.team_id, false}};
  for (const Field& f : fields) {
    auto v = identifier_claim(claims, f.claim);
    if (!v) {
      if (f.required) return refuse("missing_claim", "the token has no '" + f.claim + "' claim");
      continue;
    }
    if (!f.required && v->empty()) continue;  // an empty team is no team
    Status s = validate_identifier(*v, f.claim.c_str(), f.required);
    if (v->empty() || !s.ok()) {
      return refuse("invalid_claim", "the token's '" + f.claim + "' claim is not a usable identifier" +
                                         (s.ok() ? "" : ": " + s.message()));
    }
    *f.out = *v;
  }
  return ok;
}

}  // namespace fb::detail
