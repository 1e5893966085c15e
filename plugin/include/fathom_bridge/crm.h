// crm.h: the CRM operations a host registers for the Lua scripts (crm.upsert_contact, ...).
//
// A script calls crm.<operation>(args) with a table; the bridge turns it into JSON and calls the
// host's handler with an idempotency key derived from (integration, recording, content version,
// operation, call index), so reprocessing an event never creates a CRM record twice: the host
// must return the earlier result when it sees a key again. A handler's failure Status becomes a
// Lua error carrying the host's message. Handlers are called from worker threads: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "fathom_bridge/status.h"

namespace fb {

struct CrmCall {
  std::string operation;        // e.g. "upsert_contact"
  std::string args_json;        // a JSON object
  std::string idempotency_key;  // stable across retries of the same event
  int64_t integration_id = 0;
  std::string tenant_id;
  std::string user_id;
  bool dry_run = false;         // true under `fathom-bridge script test`: nothing may be written
  // The stored script version whose rule made this call (issue 15); 0: the scripts directory's.
  int64_t script_version = 0;
};

// Returns the operation's result as JSON text (an object, e.g. {"id":"c_42"}), or a Status.
using CrmHandler = std::function<Result<std::string>(const CrmCall&)>;

// Optional: around the CRM operations of one batch of meetings (the webhook workers and the sync
// engine map meetings in batches). begin(n) runs on a worker thread before the batch's first
// operation, end(true) after its last, and every operation of the batch comes on that thread in
// between, so a host can make a batch's CRM writes one transaction of its own. end(true) must make
// them durable before it returns (the batch is recorded as mapped right after); end(false) follows
// a failed begin. A failed begin fails the batch (retried later); a failed end(true) fails every
// meeting the batch mapped (mapped again later under the same idempotency keys). Batches of
// different threads may run at the same time. Either function may be empty.
struct CrmBatchHooks {
  std::function<Status(size_t meetings)> begin;
  std::function<Status(bool ok)> end;
};

}  // namespace fb
