// script_store.h: the storage behind the Lua `store` module: per-integration key/value pairs in
// the SQLite table script_store (component "scripting"), or in memory for dry runs.
// Thread-safe. Values are JSON text written by the bindings.
//
// Batches (issue 11): between begin_batch() and end_batch() on a thread, that thread's set() and
// remove() are kept in memory instead of each being a write transaction: get() on that thread
// reads them (a later event of the batch sees what an earlier one wrote), the key limit counts
// them, and end_batch() hands them to the caller, which writes them in the batch's own
// transaction (BatchWrites::apply), so they commit or roll back with the batch. Other threads and
// processes see them once that transaction commits. Without a Db there is nothing to batch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/pipeline.h"
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

  // See the top of this file. begin_batch drops what an earlier batch of this thread left untaken.
  void begin_batch();
  // The thread's batched writes (null when there were none, or no batch was begun).
  std::unique_ptr<BatchWrites> end_batch();

 private:
  class Pending;
  explicit ScriptStore(Db* db);
  // The calling thread's open batch on this store, or null.
  Pending* batch_of_this_thread();
  Db* db_;
  const uint64_t serial_;  // names this store's batches in thread-local storage
  std::mutex mu_;  // the in-memory map
  std::map<std::pair<int64_t, std::string>, std::string> memory_;
};

}  // namespace fb::detail
