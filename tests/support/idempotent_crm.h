// idempotent_crm.h: the CRM a `fathom-bridge serve` posts its crm.<op> calls to (server.crm_url),
// on loopback in the test process, so that it outlives every kill of a host. It behaves like a real
// CRM with an idempotency store: a repeated Idempotency-Key gets its first answer (a duplicate
// absorbed); one content version of a meeting whose activity is logged under two different keys is
// a meeting mapped twice. A new content version (changed content, or a copy bringing what the
// first mapping could not have: sync/meeting_store.h) is mapped again, under keys of its own.
//
//   IdempotentCrm crm;                       // listens on 127.0.0.1, a free port
//   config: {"server": {"crm_url": crm.url()}}
//   crm.activities()[{integration, recording}] == 1   // each content version mapped exactly once
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
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
  // Per (integration, recording): the most activities one content version of it was logged as,
  // each under a key of its own (1: mapped exactly once).
  std::map<std::pair<int64_t, int64_t>, int> activities() const;
  // Per (integration, recording): the content versions of it that were mapped.
  std::map<std::pair<int64_t, int64_t>, std::set<int64_t>> versions() const;
  int64_t calls() const;    // every call received
  int64_t replays() const;  // calls whose key was seen before (answered from the store)
  // Each call waits this long before it is answered (a CRM that takes its time).
  void set_delay_ms(int ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::test
