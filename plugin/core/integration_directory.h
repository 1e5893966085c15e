// integration_directory.h: what the sync engine, webhook workers and scheduler need to know
// about integrations, without depending on how the oauth layer stores them. The oauth layer's
// IntegrationStore implements it; tests may implement it directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb::detail {

struct IntegrationInfo {
  int64_t id = 0;
  std::string tenant_id;
  std::string user_id;
  std::string team_id;
  std::string kind;    // "oauth" or "api_key"
  std::string status;  // "active", "reconnect_required", "disconnected"
  bool active = false;
  int64_t last_sync_at = 0;  // unix seconds, 0 = never
};

class IntegrationDirectory {
 public:
  virtual ~IntegrationDirectory() = default;
  // Thread-safe.
  virtual std::vector<IntegrationInfo> list_active() = 0;
  virtual Result<IntegrationInfo> get(int64_t integration_id) = 0;
  // Records that a sync of the integration completed at unix time at_s.
  virtual Status record_sync(int64_t integration_id, int64_t at_s) = 0;
};

}  // namespace fb::detail
