// one_integration.h: an IntegrationDirectory with one active integration (id 1, tenant "t", user
// "u"), for the webhook processes and tests that need no OAuth store.
#pragma once

#include <vector>

#include "core/integration_directory.h"

namespace fb::test {

class OneIntegration final : public detail::IntegrationDirectory {
 public:
  std::vector<detail::IntegrationInfo> list_active() override { return {*get(1)}; }
  Result<detail::IntegrationInfo> get(int64_t id) override {
    if (id != 1) return Status::NotFound("no integration");
    detail::IntegrationInfo i;
    i.id = 1;
    i.tenant_id = "t";
    i.user_id = "u";
    i.status = "active";
    i.active = true;
    return i;
  }
  Status record_sync(int64_t, int64_t) override { return Status::Ok(); }
};

}  // namespace fb::test
