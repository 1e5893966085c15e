#include "core/random.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "crypto/encoding.h"

namespace fb::detail {

uint64_t Random::next_u64() {
  uint64_t v = 0;
  fill(reinterpret_cast<uint8_t*>(&v), sizeof v);
  return v;
}

double Random::next_unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

std::string Random::token(size_t n) {
  std::vector<uint8_t> buf(n);
  fill(buf.data(), n);
  return base64url_encode(buf.data(), n);
}

void SystemRandom::fill(uint8_t* buf, size_t n) {
  if (RAND_bytes(buf, static_cast<int>(n)) != 1) {
    std::fputs("fathom-bridge: OpenSSL RAND_bytes failed; refusing to continue\n", stderr);
    std::abort();
  }
}

Random& system_random() {
  static SystemRandom r;
  return r;
}

}  // namespace fb::detail
