// store_command.h: `fathom-bridge store copy --from PATH --to URL [--json]` (issue 12), moving a
// single-host installation to PostgreSQL (plugin/bridge/store_copy.h does the copying).
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace fb::cli {

// positional: the words after `store`; values: --name value options (from, to, json).
// Exit codes: 0 copied, 1 refused or failed (the target is left empty), 2 bad usage.
int store_command(const std::vector<std::string>& positional, const std::map<std::string, std::string>& values,
                  std::ostream& out, std::ostream& err);

extern const char* const kStoreUsage;

}  // namespace fb::cli
