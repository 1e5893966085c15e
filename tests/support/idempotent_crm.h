// idempotent_crm.h: the CRM a `fathom-bridge serve` posts its crm.<op> calls to (server.crm_url),
// on loopback in the test process, so that it outlives every kill of a host. It behaves like a real
// CRM with an idempotency store: a repeated Idempotency-Key gets its first answer (a duplicate
// absorbed); a meeting's activity logged under two different keys is a meeting mapped twice.
//
//   IdempotentCrm crm;                       // listens on 127.0.0.1, a free port
//   config: {"server": {"crm_url": crm.url()}}
//   crm.activities()[{integration, recording}] == 1   // mapped exactly once
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace fb::test {

class IdempotentCrm {
 public:
  IdempotentCrm();
  ~IdempotentCrm();
  IdempotentCrm(const IdempotentCrm&) = delete;
  IdempotentCrm& operator=(const IdempotentCrm&) = delete;

  std::string url() const;  // "http://127.0.0.1:PORT/crm"
  // Activities logged per (integration, recording), each under a key of its own.
  std::map<std::pair<int64_t, int64_t>, int> activities() const;
  int64_t calls() const;    // every call received
  int64_t replays() const;  // calls whose key was seen before (answered from the store)
  // Each call waits this long before it is answered (a CRM that takes its time).
  void set_delay_ms(int ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::test
