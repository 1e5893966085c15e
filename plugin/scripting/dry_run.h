// dry_run.h: `fathom-bridge script test <script> --meeting <file.json> [options]`.
//
// Runs one script against meeting JSON without calling the host: every CRM operation is recorded
// and answered by a stand-in (find_* operations answer null, i.e. "not found"; others
// {"id": "dry-<operation>-<n>"}; --crm-results FILE supplies other answers per operation), the
// store lives in memory, and fathom.* has no Fathom access. It prints the operations the script
// would perform, its log lines, and any error with file and line.
//
//   fathom-bridge script test scripts/mapping.lua --meeting meeting.json
//   options: --scripts-dir DIR      directory for require (default: the script's directory)
//            --hook on_meeting|on_webhook   (default on_meeting)
//            --json                 machine-readable output
//            --company-domain D     our email domain (repeatable; default: the recorder's)
//            --crm-results FILE     JSON object: operation -> result returned for every call
//            --allow-op NAME        accept an operation not in the documented list (repeatable)
//   The meeting file holds a Meeting object, an array of them, or a /meetings response ({"items": [...]}).
//
// Exit codes: 0 every meeting ran cleanly; 1 a script failed to load or raised an error (the
// message has file:line); 2 bad usage or an unreadable/malformed meeting file.
// Operations outside the documented list (scripts/README.md) are errors, so a typo fails in CI.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fb::detail {

// argv[0] is ignored (the program or subcommand name); argv[1..] are the arguments after
// `script test`. Writes the report to out and diagnostics to err. Thread-compatible.
int run_script_test(int argc, char** argv, std::ostream& out, std::ostream& err);

// The CRM operations documented in scripts/README.md, which hosts implement.
const std::vector<std::string>& documented_crm_operations();

// The stand-in CRM's answer to the n-th call of op in a dry run: canned[op] when given, else null
// for find_* (not found) and {"id": "dry-<op>-<n>"} for the others.
std::string dry_run_answer(const std::string& op, int n, const nlohmann::json& canned);

}  // namespace fb::detail
