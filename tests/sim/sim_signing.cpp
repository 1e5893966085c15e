#include "sim/sim_signing.h"

#include "core/random.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace fb::sim {

std::optional<std::string> webhook_key(const std::string& secret) {
  static const std::string kPrefix = "whsec_";
  if (secret.rfind(kPrefix, 0) != 0) return std::nullopt;
  auto key = fb::detail::base64_decode(std::string_view(secret).substr(kPrefix.size()));
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string sign_webhook(const std::string& secret, const std::string& msg_id, int64_t timestamp,
                         const std::string& body) {
  auto key = webhook_key(secret);
  if (!key) return {};
  std::string ts = std::to_string(timestamp);
  std::string mac = fb::detail::hmac_sha256_parts(*key, {msg_id, ".", ts, ".", body});
  return "v1," + fb::detail::base64_encode(mac);
}

std::string new_webhook_secret() {
  uint8_t bytes[24];
  fb::detail::system_random().fill(bytes, sizeof bytes);
  return "whsec_" + fb::detail::base64_encode(bytes, sizeof bytes);
}

std::string new_message_id() {
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint8_t bytes[27];
  fb::detail::system_random().fill(bytes, sizeof bytes);
  std::string id = "msg_";
  for (uint8_t b : bytes) id += kChars[b % 62];
  return id;
}

}  // namespace fb::sim
