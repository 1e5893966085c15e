// script_store.h: the storage behind the Lua `store` module: per-integration key/value pairs in
// the SQLite table script_store (component "scripting"), or in memory for dry runs.
// Thread-safe. Values are JSON text written by the bindings.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "fathom_bridge/status.h"

namespace fb::detail {

class Db;

class ScriptStore {
 public:
  static constexpr int64_t kMaxKeysPerIntegration = 10'000;

  // With a Db: applies the "scripting" migrations and stores there. Without: in memory.
  static Result<std::unique_ptr<ScriptStore>> open(Db* db);

  Result<std::optional<std::string>> get(int64_t integration_id, std::string_view key);
  // kTooLarge when the integration already has kMaxKeysPerIntegration keys.
  Status set(int64_t integration_id, std::string_view key, std::string_view value_json);
  Status remove(int64_t integration_id, std::string_view key);

 private:
  explicit ScriptStore(Db* db) : db_(db) {}
  Db* db_;
  std::mutex mu_;  // the in-memory map
  std::map<std::pair<int64_t, std::string>, std::string> memory_;
};

}  // namespace fb::detail
