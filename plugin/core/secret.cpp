#include "core/secret.h"

#include <openssl/crypto.h>

namespace fb::detail {

bool SecretString::operator==(const SecretString& o) const {
  if (value_.size() != o.value_.size()) return false;
  return CRYPTO_memcmp(value_.data(), o.value_.data(), value_.size()) == 0;
}

void SecretString::wipe() noexcept {
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
}

}  // namespace fb::detail
