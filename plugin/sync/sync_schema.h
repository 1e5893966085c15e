// sync_schema.h: the tables of the "sync" component (meetings, content cache, per-integration
// sync state, job log), created through Db::migrate. Every class of plugin/sync calls
// migrate_sync_schema on the Db it is given; it is idempotent and safe across processes.
#pragma once

#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

Status migrate_sync_schema(Db& db);

}  // namespace fb::detail
