// random.h: the randomness seam. Production uses OpenSSL's CSPRNG; tests may inject a seeded one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fb::detail {

class Random {
 public:
  virtual ~Random() = default;
  // Fills buf with n unpredictable bytes. Thread-safe. Aborts the process if the CSPRNG fails,
  // since continuing with weak randomness would break every state and nonce.
  virtual void fill(uint8_t* buf, size_t n) = 0;
  uint64_t next_u64();
  // A uniform double in [0, 1), for backoff jitter.
  double next_unit();
  // n random bytes, as URL-safe base64 without padding.
  std::string token(size_t n);
};

class SystemRandom final : public Random {
 public:
  void fill(uint8_t* buf, size_t n) override;
};
Random& system_random();

}  // namespace fb::detail
