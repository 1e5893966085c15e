// crm_registry.h: the CRM operations a host registered (crm.h), shared by every Lua state.
// Copy-on-write: an event takes one snapshot, so registering during traffic never blocks a call
// and an event sees one consistent set. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "fathom_bridge/crm.h"

namespace fb::detail {

class CrmRegistry {
 public:
  using Map = std::map<std::string, CrmHandler, std::less<>>;

  // Adds or replaces. kInvalidArgument for names that are not Lua identifiers or are reserved
  // (call, try, has, operations), or for an empty handler.
  Status add(const std::string& name, CrmHandler handler);
  std::shared_ptr<const Map> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Map> map_ = std::make_shared<const Map>();  // guarded by mu_
};

}  // namespace fb::detail
