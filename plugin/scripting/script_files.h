// script_files.h: the scripts directory as the host sees it: safe path resolution, cheap change
// detection, and a Generation (one consistent set of script sources shared by all states).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb::detail {

constexpr size_t kMaxScriptBytes = 1 << 20;

// A script set held in memory (a stored version, issue 15): relative path -> Lua source
// ("mapping.lua", "reactions.lua", "helpers/domains.lua").
using ScriptFiles = std::map<std::string, std::string>;

// What a cheap stat says about one file. Within a few seconds of its mtime a file is "racy"
// (the file system's clock is coarse: two writes can share an mtime), so its content hash is
// taken too (as git does for racily clean index entries).
struct FileSig {
  std::string rel;  // path relative to the scripts directory
  bool exists = false;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t ino = 0;
  uint64_t hash = 0;  // FNV-1a of the content when racy (or when the previous sample was), else 0
};

// Equal when stat data match and, where both samples hashed the content, the hashes too.
bool same_file(const FileSig& a, const FileSig& b);
// Samples rel inside dir. previous (may be null) makes it hash when the previous sample did.
FileSig sample_file(const std::string& dir, const std::string& rel, const FileSig* previous);

// Canonical absolute form of a directory (kNotFound / kInvalidArgument when unusable).
Result<std::string> canonical_dir(const std::string& dir);
// Resolves rel inside the canonical dir: relative, no "..", no NUL, and its real path (after
// symlinks) still inside dir. Returns the real path.
Result<std::string> resolve_in_dir(const std::string& dir, std::string_view rel);
// Reads a script file (regular file, at most kMaxScriptBytes) resolved by resolve_in_dir.
Result<std::string> read_script(const std::string& dir, std::string_view rel);
// Lua module name to relative path: "helpers.domains" -> "helpers/domains.lua". Names are
// dot-separated words of letters, digits, '_' and '-'.
Result<std::string> module_path(std::string_view name);

struct ScriptSource {
  std::string rel;      // "mapping.lua"
  std::string display;  // "scripts/mapping.lua": chunk name, shown in errors
  std::string text;
};

// One version of the scripts: the entry scripts' sources (read once), and module sources read on
// first require. Every state of a generation runs the same text. Thread-safe.
class Generation {
 public:
  Generation(uint64_t id, std::string dir, std::string display_prefix, std::vector<ScriptSource> entries,
             std::vector<FileSig> entry_sigs);
  // A stored version: every source (modules too) comes from files, never from the disk.
  Generation(uint64_t id, std::string display_prefix, std::vector<ScriptSource> entries,
             std::shared_ptr<const ScriptFiles> files, int64_t version_id);

  uint64_t id() const { return id_; }
  // The stored version this generation runs (0: the scripts directory).
  int64_t version_id() const { return version_id_; }
  const std::string& dir() const { return dir_; }
  const std::vector<ScriptSource>& entries() const { return entries_; }
  std::string display(std::string_view rel) const { return prefix_ + "/" + std::string(rel); }

  // The module at rel, read and remembered on first use (kNotFound when there is no such file).
  Result<std::shared_ptr<const ScriptSource>> module(const std::string& rel);
  // Entry files (also the absent optional ones) and the modules required so far (also those
  // that were missing), so that creating or changing any of them is a change.
  std::vector<FileSig> signatures() const;

 private:
  const uint64_t id_;
  const std::string dir_;
  const std::string prefix_;
  const std::vector<ScriptSource> entries_;
  const std::shared_ptr<const ScriptFiles> files_;  // a stored version's sources; null: the directory
  const int64_t version_id_ = 0;
  mutable std::mutex mu_;
  std::vector<FileSig> sigs_;  // guarded by mu_
  std::map<std::string, std::shared_ptr<const ScriptSource>> modules_;  // guarded by mu_
};

}  // namespace fb::detail
