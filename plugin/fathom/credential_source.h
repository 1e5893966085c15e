// credential_source.h: how the API client obtains credentials for an integration.
// The oauth layer implements it (TokenManager): credential() returns a token valid for at least
// the refresh buffer, refreshing first when needed; after a 401, refresh_after_unauthorized()
// forces one refresh unless another caller already replaced the rejected token.
#pragma once

#include <cstdint>

#include "core/secret.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

struct Credential {
  enum class Kind { kBearer, kApiKey };
  Kind kind = Kind::kBearer;
  SecretString value;
  int64_t token_version = 0;  // identifies which token this is, for refresh_after_unauthorized
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // Thread-safe. Fails with kReconnectRequired when the integration needs the user again.
  virtual Result<Credential> credential(int64_t integration_id) = 0;
  // Thread-safe. `rejected` is what got the 401.
  virtual Result<Credential> refresh_after_unauthorized(int64_t integration_id, const Credential& rejected) = 0;
};

}  // namespace fb::detail
