// shutdown.h: how `fathom-bridge serve` stops on SIGTERM/SIGINT.
//
//   1. Syncs are asked to stop (SyncEngine::request_stop): a running one ends "cancelled" at its
//      next safe point (a page boundary, a rate-limit or backoff wait), its checkpoint kept, so
//      the next run resumes there; the scheduler thread stops.
//   2. The HTTP server stops accepting and answers the requests in flight: a webhook delivery is
//      answered once its group commit is durable, a host route once its handler returns.
//   3. The webhook workers finish the events they hold and stop; pending events stay in the inbox.
// All of it within a time budget (server.shutdown_timeout_s, default 10 s). Past the budget the
// caller exits anyway: what was not finished is safe (deliveries not yet answered were not
// acknowledged, so Fathom sends them again; events a worker held are reclaimed at the next start;
// a sync resumes from its checkpoint).
#pragma once

#include <chrono>

#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"

namespace fb::detail {

// Runs the steps above; true when all of them finished within budget. On false the work is still
// running on a detached thread and the caller should exit the process.
bool shutdown_gracefully(Bridge& bridge, Sidecar& sidecar, std::chrono::milliseconds budget);

}  // namespace fb::detail
