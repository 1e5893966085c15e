// sim_signing.h: how fathom-sim signs webhook deliveries (fathom-api.md 5.3, Standard Webhooks).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace fb::sim {

// The HMAC key of a "whsec_<base64>" secret: the base64-decoded bytes after the prefix.
// nullopt when the prefix is missing or the rest is not valid base64.
std::optional<std::string> webhook_key(const std::string& secret);

// "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>". Empty when the secret is
// malformed. Thread-safe, pure.
std::string sign_webhook(const std::string& secret, const std::string& msg_id, int64_t timestamp,
                         const std::string& body);

// A new secret: "whsec_" + base64 of 24 random bytes (OpenSSL CSPRNG).
std::string new_webhook_secret();
// A message id "msg_" + 27 random base62 characters, like Svix ids.
std::string new_message_id();

}  // namespace fb::sim
