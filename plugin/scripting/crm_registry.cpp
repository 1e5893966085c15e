#include "scripting/crm_registry.h"

#include <cctype>

namespace fb::detail {

Status CrmRegistry::add(const std::string& name, CrmHandler handler) {
  bool ident = !name.empty() && name.size() <= 64 && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) ident = ident && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ident) {
    return Status::InvalidArgument("CRM operation name '" + name.substr(0, 64) +
                                   "' must be a Lua identifier (letters, digits, '_')");
  }
  if (name == "call" || name == "try" || name == "has" || name == "operations") {
    return Status::InvalidArgument("CRM operation name '" + name + "' is reserved by the crm module");
  }
  if (!handler) return Status::InvalidArgument("CRM operation '" + name + "' has no handler");
  std::lock_guard lock(mu_);
  auto next = std::make_shared<Map>(*map_);
  (*next)[name] = std::move(handler);
  map_ = std::move(next);
  return Status::Ok();
}

std::shared_ptr<const CrmRegistry::Map> CrmRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  return map_;
}

}  // namespace fb::detail
