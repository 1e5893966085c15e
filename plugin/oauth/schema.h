// schema.h: the SQLite tables of the oauth component (migration component "oauth").
//
//   integrations  one row per (tenant, user): the Fathom connection, its sealed credentials, the
//                 refresh bookkeeping (version, failures, cool-down) and the cross-process refresh
//                 lease. A blob column holds a Sealer blob, never plaintext.
//   oauth_states  pending authorization requests: only the SHA-256 of the state is stored.
//   audit_log     connection events (connected, reconnect_required, disconnected, ...).
//
// Times are Unix seconds except refresh_lease_until, which is Unix milliseconds.
#pragma once

#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

// Applies the missing oauth migrations. Safe to call from several processes at once.
Status migrate_oauth_schema(Db& db);

}  // namespace fb::detail
