// schema.h: the tables of the "webhooks" component (registrations and the durable inbox).
#pragma once

#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

// Applies the "webhooks" component's migrations (idempotent; safe from several processes).
Status migrate_webhooks(Db& db);

}  // namespace fb::detail
