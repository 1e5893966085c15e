// script_routes.h: the sidecar's routes for stored script versions (issue 15; bridge.h,
// "stored script versions"). Behind the /v1 bearer token like every host route.
//
//   GET  /v1/scripts/versions?tenant_id=&limit=   the scope's versions, newest first
//   POST /v1/scripts/versions   {"tenant_id"?, "files": {path: source}, "author", "note"?} -> 201 the version
//                               (422 with "upload/<file>:<line>: ..." when it does not load)
//   POST /v1/scripts/activate   {"tenant_id"?, "version_id", "author"} -> the activation
//   POST /v1/scripts/rollback   {"tenant_id"?, "author"} -> the activation
//   POST /v1/scripts/validate   {"tenant_id"?, "version_id", "meetings"? (50)} -> the report of
//                               Bridge::script_validate (CRM operations added, removed, changed)
// No tenant_id (or null) is the default set.
#pragma once

#include "fathom_bridge/bridge.h"
#include "server/http_server.h"

namespace fb::detail {

void mount_script_routes(HttpServer& server, Bridge& bridge);

}  // namespace fb::detail
