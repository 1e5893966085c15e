#include "crypto/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <memory>

namespace fb::detail {

std::string sha256(std::string_view data) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  return hmac_sha256_parts(key, {data});
}

std::string hmac_sha256_parts(std::string_view key, std::initializer_list<std::string_view> parts) {
  // One-shot HMAC(); several parts are gathered first (they are small next to the body).
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (parts.size() == 1) {
    const auto& p = *parts.begin();
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(p.data()),
         p.size(), reinterpret_cast<unsigned char*>(out.data()), &len);
  } else {
    size_t total = 0;
    for (const auto& p : parts) total += p.size();
    std::string buf;
    buf.reserve(total);
    for (const auto& p : parts) buf.append(p);
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(buf.data()), buf.size(),
         reinterpret_cast<unsigned char*>(out.data()), &len);
  }
  out.resize(len);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace fb::detail
