#include "webhooks/verifier.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

#include "crypto/encoding.h"

namespace fb::detail {

namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr size_t kBlock = 64;  // SHA-256 block size

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// One scratch digest context per thread: copying a prepared pad state into it allocates nothing
// after the first use.
EVP_MD_CTX* scratch_ctx() {
  thread_local MdCtx ctx(EVP_MD_CTX_new());
  return ctx.get();
}

// Base64 of 32 bytes is always 44 characters with one '=' of padding.
void base64_44(const std::array<uint8_t, 32>& mac, char out[44]) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  size_t i = 0;
  for (; i + 2 < 32; i += 3) {
    uint32_t v = (uint32_t{mac[i]} << 16) | (uint32_t{mac[i + 1]} << 8) | mac[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  uint32_t v = (uint32_t{mac[30]} << 16) | (uint32_t{mac[31]} << 8);
  out[o++] = kAlphabet[(v >> 18) & 63];
  out[o++] = kAlphabet[(v >> 12) & 63];
  out[o++] = kAlphabet[(v >> 6) & 63];
  out[o++] = '=';
}

}  // namespace

struct SigningKey::Pads {
  MdCtx inner;  // SHA-256 state after absorbing key ^ ipad
  MdCtx outer;  // SHA-256 state after absorbing key ^ opad
};

SigningKey::SigningKey(std::unique_ptr<Pads> pads) : pads_(std::move(pads)) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

Result<SigningKey> SigningKey::from_bytes(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("webhook signing key is empty");
  uint8_t block[kBlock] = {};
  if (key.size() > kBlock) {  // RFC 2104: longer keys are hashed first
    unsigned int n = 0;
    EVP_Digest(key.data(), key.size(), block, &n, EVP_sha256(), nullptr);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = static_cast<uint8_t>(block[i] ^ 0x36);
    opad[i] = static_cast<uint8_t>(block[i] ^ 0x5c);
  }
  auto pads = std::make_unique<Pads>();
  pads->inner.reset(EVP_MD_CTX_new());
  pads->outer.reset(EVP_MD_CTX_new());
  bool ok = pads->inner && pads->outer && EVP_DigestInit_ex(pads->inner.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(pads->inner.get(), ipad, kBlock) == 1 &&
            EVP_DigestInit_ex(pads->outer.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(pads->outer.get(), opad, kBlock) == 1;
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  if (!ok) return Status::Internal("OpenSSL could not prepare an HMAC-SHA256 key");
  return SigningKey(std::move(pads));
}

Result<SigningKey> SigningKey::from_secret(const SecretString& secret) {
  std::string_view text = secret.reveal();
  if (text.substr(0, kSecretPrefix.size()) == kSecretPrefix) text.remove_prefix(kSecretPrefix.size());
  auto bytes = base64_decode(text);
  if (!bytes) return Status::InvalidArgument("webhook secret is not whsec_ followed by standard base64");
  if (bytes->empty()) return Status::InvalidArgument("webhook secret decodes to an empty key");
  auto key = from_bytes(*bytes);
  OPENSSL_cleanse(bytes->data(), bytes->size());
  return key;
}

std::array<uint8_t, 32> SigningKey::mac(std::string_view id, std::string_view timestamp, std::string_view body) const {
  std::array<uint8_t, 32> inner_digest{};
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  EVP_MD_CTX* c = scratch_ctx();
  EVP_MD_CTX_copy_ex(c, pads_->inner.get());
  EVP_DigestUpdate(c, id.data(), id.size());
  EVP_DigestUpdate(c, ".", 1);
  EVP_DigestUpdate(c, timestamp.data(), timestamp.size());
  EVP_DigestUpdate(c, ".", 1);
  EVP_DigestUpdate(c, body.data(), body.size());
  EVP_DigestFinal_ex(c, inner_digest.data(), &n);
  EVP_MD_CTX_copy_ex(c, pads_->outer.get());
  EVP_DigestUpdate(c, inner_digest.data(), inner_digest.size());
  EVP_DigestFinal_ex(c, out.data(), &n);
  return out;
}

std::string SigningKey::sign(std::string_view id, std::string_view timestamp, std::string_view body) const {
  char b64[44];
  base64_44(mac(id, timestamp, body), b64);
  return "v1," + std::string(b64, sizeof b64);
}

DeliveryHeaders find_delivery_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  DeliveryHeaders std_h, svix_h;
  // A header given twice: the first line counts, as in the sidecar's ServerRequest::header, so the
  // C ABI and the HTTP server give one delivery the same verdict.
  // (A slot never set has a null data(); an empty line sets it, as the sidecar's first match.)
  auto first = [](std::string_view& slot, const std::string& value) {
    if (slot.data() == nullptr) slot = value;
  };
  for (const auto& [name, value] : headers) {
    if (ascii_iequals(name, "webhook-id")) first(std_h.id, value);
    else if (ascii_iequals(name, "webhook-timestamp")) first(std_h.timestamp, value);
    else if (ascii_iequals(name, "webhook-signature")) first(std_h.signature, value);
    else if (ascii_iequals(name, "svix-id")) first(svix_h.id, value);
    else if (ascii_iequals(name, "svix-timestamp")) first(svix_h.timestamp, value);
    else if (ascii_iequals(name, "svix-signature")) first(svix_h.signature, value);
  }
  // Each family is taken as a set (never webhook-id with svix-timestamp), as the svix library does:
  // the complete webhook-* set, else the complete svix-* set, else whatever webhook-* there is so
  // the answer names the missing webhook-* header.
  auto complete = [](const DeliveryHeaders& d) {
    return !d.id.empty() && !d.timestamp.empty() && !d.signature.empty();
  };
  if (complete(std_h)) return std_h;
  if (complete(svix_h)) return svix_h;
  bool any_std = !std_h.id.empty() || !std_h.timestamp.empty() || !std_h.signature.empty();
  return any_std ? std_h : svix_h;
}

bool valid_webhook_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxWebhookIdBytes) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool parse_unix_seconds(std::string_view text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;  // 18 digits cannot overflow int64
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

const char* verify_result_name(VerifyResult r) {
  switch (r) {
    case VerifyResult::kOk: return "ok";
    case VerifyResult::kMissingHeader: return "missing header";
    case VerifyResult::kMalformedTimestamp: return "malformed timestamp";
    case VerifyResult::kStaleTimestamp: return "stale timestamp";
    case VerifyResult::kFutureTimestamp: return "future timestamp";
    case VerifyResult::kBadSignature: return "bad signature";
    case VerifyResult::kMalformedId: return "malformed webhook-id";
  }
  return "unknown";
}

VerifyResult verify_delivery(const DeliveryHeaders& h, std::string_view raw_body, const SigningKey* const* keys,
                             size_t n_keys, const VerifyOptions& options, const char** missing_header) {
  const char* missing = h.id.empty()          ? "webhook-id"
                        : h.timestamp.empty() ? "webhook-timestamp"
                        : h.signature.empty() ? "webhook-signature"
                                              : nullptr;
  if (missing) {
    if (missing_header) *missing_header = missing;
    return VerifyResult::kMissingHeader;
  }
  if (!valid_webhook_id(h.id)) return VerifyResult::kMalformedId;
  int64_t ts = 0;
  if (!parse_unix_seconds(h.timestamp, &ts)) return VerifyResult::kMalformedTimestamp;
  if (options.now_s - ts > options.tolerance_s) return VerifyResult::kStaleTimestamp;
  if (ts - options.now_s > options.tolerance_s) return VerifyResult::kFutureTimestamp;

  for (size_t k = 0; k < n_keys; ++k) {
    char expected[44];
    base64_44(keys[k]->mac(h.id, h.timestamp, raw_body), expected);
    std::string_view rest = h.signature;
    bool match = false;
    while (!rest.empty()) {
      size_t sp = rest.find(' ');
      std::string_view entry = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
      if (entry.size() < 3 || entry.substr(0, 3) != "v1,") continue;  // other versions are ignored
      std::string_view sig = entry.substr(3);
      // Every v1 entry is compared, so the time taken does not reveal which one matched.
      if (sig.size() == sizeof expected && CRYPTO_memcmp(sig.data(), expected, sizeof expected) == 0) match = true;
    }
    if (match) return VerifyResult::kOk;
  }
  return VerifyResult::kBadSignature;
}

}  // namespace fb::detail
