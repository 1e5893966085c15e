// script_versions.h: scripts as managed assets (issue 15). Versions of the script set stored in
// the store (component "script_versions"): a global default scope ("") and one scope per tenant
// (a tenant without an active version of its own runs the default's). A version is immutable:
// its files, content hash, author (as given by the host), creation time and note. Activation and
// rollback are rows of an append-only log, whose highest id is the cheap counter every process
// polls to see a change.
//
//   ScriptVersionStore v(db);                          // migrates
//   auto ver = v.add("", files, "alice", "first");     // no load check here: ScriptHost::upload does it
//   v.activate("", ver->id, "alice");
//   v.rollback("", "alice");                          // back to what was active before
//
// Threading: thread-safe as its Db is (every method is one with()/transaction()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fathom_bridge/status.h"
#include "scripting/script_files.h"

namespace fb::detail {

class Db;

struct ScriptVersionInfo {
  int64_t id = 0;
  std::string scope;         // "" = the default, else a tenant id
  std::string content_hash;  // hex SHA-256 over the sorted (path, text) pairs
  std::string author;
  std::string note;
  int64_t created_at = 0;    // unix seconds
  bool active = false;       // the scope's active version
  std::vector<std::string> paths;
  // {"id", "scope" (null for the default), "content_hash", "author", "note", "created_at",
  //  "active", "files"}
  std::string to_json() const;
};

// One activation log entry: which version became active (0: none, the scope falls back).
struct ScriptActivation {
  int64_t id = 0;
  std::string scope;
  int64_t version_id = 0;
  int64_t previous_version_id = 0;
  std::string kind;  // "activate" or "rollback"
  std::string author;
  int64_t created_at = 0;
};

// The hash of a set of files (what content_hash holds).
std::string script_files_hash(const ScriptFiles& files);
// Checks paths and sizes: relative .lua paths as module_path makes them, mapping.lua present,
// at most kMaxScriptBytes each. kInvalidArgument / kTooLarge naming the file.
Status check_script_files(const ScriptFiles& files);
// Reads every *.lua below dir (mapping.lua, reactions.lua, modules; symlinks not followed),
// except lua-language-server stubs (files starting with ---@meta, as scripts/types/ holds).
Result<ScriptFiles> read_script_folder(const std::string& dir);

class ScriptVersionStore {
 public:
  static Result<std::unique_ptr<ScriptVersionStore>> open(Db* db);

  // Stores a new version (the caller has checked that it loads). When the scope already has a
  // version with the same content hash, returns that one instead (uploads are idempotent).
  Result<ScriptVersionInfo> add(const std::string& scope, const ScriptFiles& files, const std::string& author,
                                const std::string& note);
  Result<ScriptVersionInfo> info(int64_t id);
  Result<ScriptFiles> files(int64_t id);
  // Newest first, at most limit.
  Result<std::vector<ScriptVersionInfo>> list(const std::string& scope, int limit);
  // Makes version id (of this scope) the scope's active one. kNotFound for another scope's id.
  Result<ScriptActivation> activate(const std::string& scope, int64_t id, const std::string& author);
  // Makes the version that was active before the current activation active again (0: none, the
  // scope falls back to the default or the folder). kFailedPrecondition when nothing is active.
  Result<ScriptActivation> rollback(const std::string& scope, const std::string& author);
  // The highest activation id: changes whenever any scope's active version changes.
  Result<int64_t> counter();
  // Every scope's active version: scope -> version id (scopes with none are absent).
  Result<std::map<std::string, int64_t>> active_versions();
  // The scope's activations, newest first (for the "last good version" search at cold start).
  Result<std::vector<ScriptActivation>> history(const std::string& scope, int limit);

 private:
  explicit ScriptVersionStore(Db* db) : db_(db) {}
  Result<ScriptActivation> record(const std::string& scope, int64_t version_id, const std::string& kind,
                                  const std::string& author);
  Db* db_;
};

}  // namespace fb::detail
