// script_commands.h: `fathom-bridge script upload|import|list|activate|rollback|validate` (issue 15), the
// stored script versions of bridge.h from a terminal.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "fathom_bridge/bridge.h"

namespace fb::cli {

// Whether sub is one of these commands.
bool is_script_version_command(const std::string& sub);
// Runs one. positional: the words after `script <sub>`; values: --name value options (tenant,
// author, note, base, limit, json). Exit codes: 0 done, 1 refused or failed (a script that does
// not load: its file and line on err), 2 bad usage.
int script_version_command(Bridge& bridge, const std::string& sub, const std::vector<std::string>& positional,
                           const std::map<std::string, std::string>& values, std::ostream& out, std::ostream& err);

extern const char* const kScriptVersionUsage;

}  // namespace fb::cli
