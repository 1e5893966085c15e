// sync_schema.h: the tables of the "sync" component (meetings, content cache, per-integration
// sync state, job log), created through Db::migrate. Every class of plugin/sync calls
// migrate_sync_schema on the Db it is given; it is idempotent and safe across processes.
#pragma once

#include <cstdint>
#include <vector>

#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

Status migrate_sync_schema(Db& db);

// Recording ids of the integration with mapped_version < content_version, oldest first.
Result<std::vector<int64_t>> select_unmapped(Db& db, int64_t integration_id, int limit);

}  // namespace fb::detail
