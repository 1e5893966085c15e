// sealer.h: AES-256-GCM sealing of tokens and secrets at rest, with key ids for rotation.
//
// A sealed blob is: "FB1" | key-id length (1 byte) | key id | 12-byte nonce | ciphertext | 16-byte tag.
// Every seal draws a fresh random nonce. The associated data binds a blob to its place
// (e.g. "integration/42/refresh_token"), so a blob copied into another row does not open.
// Thread-safe after configuration (add_key/set_active before sharing).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/random.h"
#include "core/secret.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

class Sealer {
 public:
  explicit Sealer(Random& random = system_random()) : random_(random) {}

  // Adds a 32-byte key under id (1..64 printable characters). The first key added is active.
  Status add_key(const std::string& id, const SecretString& key);
  Status set_active(const std::string& id);
  const std::string& active_key_id() const { return active_; }
  bool has_keys() const { return !keys_.empty(); }

  Result<std::string> seal(const SecretString& plaintext, std::string_view aad) const;
  // Fails with kIo-free kMalformed for a damaged blob, kNotFound for an unknown key id, and
  // kRejected when authentication fails (wrong key, wrong aad, tampered bytes).
  Result<SecretString> open(std::string_view blob, std::string_view aad) const;
  // The key id a blob was sealed with ("" when malformed).
  static std::string key_id_of(std::string_view blob);

 private:
  Random& random_;
  std::map<std::string, SecretString> keys_;
  std::string active_;
};

// Parses a key setting: "base64" (id "k1") or "id:base64"; the decoded key must be 32 bytes.
Status parse_key_spec(std::string_view spec, std::string* id, SecretString* key);

}  // namespace fb::detail
