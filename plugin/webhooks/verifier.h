// verifier.h: Standard Webhooks signature verification (fathom-api.md section 5.3).
//
// A delivery carries webhook-id, webhook-timestamp and webhook-signature (or the svix-* names).
// It is genuine when HMAC-SHA256(key, id "." timestamp "." raw_body), base64-encoded, equals one of
// the "v1,<base64>" entries of the signature header (space-separated; other versions are ignored),
// compared in constant time, and the timestamp is within the tolerance in both directions. The key
// is the base64-decoded part of the "whsec_" secret (any length >= 1). The body is never parsed or
// re-serialised here: the signature covers the exact bytes received.
//
// This is the hot path of webhook ingest: a SigningKey decodes its secret once and keeps the
// HMAC inner and outer pads already hashed, so a verification costs the hashing of the message
// and two small digest finalisations, with no allocation.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/secret.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

// The three delivery headers as views into the caller's storage. A header that is absent or empty
// has an empty view.
struct DeliveryHeaders {
  std::string_view id;
  std::string_view timestamp;
  std::string_view signature;
};

// Finds the delivery headers in name/value pairs: names are case-insensitive; the webhook-* names
// win over the svix-* names when both are present; of a header given twice, the first line (as the
// sidecar's HTTP server). The views point into `headers`.
DeliveryHeaders find_delivery_headers(const std::vector<std::pair<std::string, std::string>>& headers);

// One signing key, ready for use. Immutable after creation: thread-safe to share.
class SigningKey {
 public:
  // Parses a secret: "whsec_" + standard base64 (the prefix is optional, as in the Standard Webhooks
  // libraries). Fails with kInvalidArgument when the base64 is invalid or decodes to zero bytes; the
  // message never contains the secret.
  static Result<SigningKey> from_secret(const SecretString& secret);
  // From raw key bytes (at least one).
  static Result<SigningKey> from_bytes(std::string_view key);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // HMAC-SHA256(key, id "." timestamp "." body).
  std::array<uint8_t, 32> mac(std::string_view id, std::string_view timestamp, std::string_view body) const;
  // The "v1,<base64>" signature header entry for a message (used by tests, benchmarks and tools).
  std::string sign(std::string_view id, std::string_view timestamp, std::string_view body) const;

 private:
  struct Pads;
  explicit SigningKey(std::unique_ptr<Pads> pads);
  std::unique_ptr<Pads> pads_;
};

enum class VerifyResult {
  kOk = 0,
  kMissingHeader,       // one of the three headers is absent or empty
  kMalformedTimestamp,  // not a decimal Unix time in seconds
  kStaleTimestamp,      // older than the tolerance
  kFutureTimestamp,     // newer than the tolerance
  kBadSignature,        // no v1 entry matches any candidate key
  kMalformedId,         // webhook-id longer than kMaxWebhookIdBytes or not visible ASCII
};

// The longest webhook-id accepted. The spec sets no bound (Svix ids are about 31 bytes), but the
// inbox keys on the id: PostgreSQL cannot index an entry beyond about 2.7 KB, nor store bytes that
// are not UTF-8 as text.
constexpr size_t kMaxWebhookIdBytes = 1024;
// Whether a webhook-id can be a key: 1 to kMaxWebhookIdBytes bytes of visible ASCII (0x21-0x7e).
bool valid_webhook_id(std::string_view id);

// A short, static, secret-free description ("stale timestamp").
const char* verify_result_name(VerifyResult r);

struct VerifyOptions {
  int64_t now_s = 0;          // the receiver's clock, Unix seconds
  int64_t tolerance_s = 300;  // accepted skew in both directions
};

// Verifies a delivery against candidate keys (the current secret first, then a previous one that
// is still within its grace period). When missing_header is not null it receives the name of the
// first missing header ("webhook-id", "webhook-timestamp" or "webhook-signature").
VerifyResult verify_delivery(const DeliveryHeaders& headers, std::string_view raw_body,
                             const SigningKey* const* keys, size_t n_keys, const VerifyOptions& options,
                             const char** missing_header = nullptr);
inline VerifyResult verify_delivery(const DeliveryHeaders& headers, std::string_view raw_body, const SigningKey& key,
                                    const VerifyOptions& options, const char** missing_header = nullptr) {
  const SigningKey* k = &key;
  return verify_delivery(headers, raw_body, &k, 1, options, missing_header);
}

// Parses a decimal Unix timestamp ("1712345678"); false on anything else (sign, spaces, overflow).
bool parse_unix_seconds(std::string_view text, int64_t* out);

}  // namespace fb::detail
