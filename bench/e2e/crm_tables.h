// crm_tables.h: the benchmark's CRM (bench/e2e): the CRM operations of scripts/README.md upserting
// into SQLite tables (crm_schema.sql). The in-process host (e2e_host.cpp) and the HTTP CRM
// (e2e_crm_server.cpp) both use it, so systems (a) and (b) write through the same code.
#pragma once

#include <sqlite3.h>

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace e2e {

class CrmTables {
 public:
  // Opens (creates) the database at path with the schema file's statements. Throws on failure.
  CrmTables(const std::string& path, const std::string& schema_file);
  ~CrmTables();
  CrmTables(const CrmTables&) = delete;
  CrmTables& operator=(const CrmTables&) = delete;

  // One CRM operation: args is its JSON object. On success returns true and sets *result to the
  // result's JSON text ("null" for a find that found nothing); else false and *result = a message.
  // Thread-safe: inside a batch of the calling thread it joins that batch's transaction, otherwise
  // it is a transaction of its own.
  bool call(const std::string& operation, std::string_view args_json, std::string* result);

  // A batch: one write transaction around every call the calling thread makes until end_batch.
  // Batches of different threads take turns (SQLite has one writer).
  bool begin_batch();
  bool end_batch(bool commit);

 private:
  bool exec(const char* sql);
  sqlite3_stmt* stmt(const char* sql);
  bool run(const std::string& op, std::string_view args_json, std::string* result);

  sqlite3* db_ = nullptr;
  std::mutex mu_;                      // held by the thread whose batch is open
  std::thread::id batch_owner_;
  std::map<const char*, sqlite3_stmt*> stmts_;
};

// The "args" member of a CRM call's JSON text ({"operation", "args": {...}, ...}, as the bridge
// sends it) as JSON text, "{}" without one. A scan for the member and its matching bracket: the host
// does not parse the whole call a second time.
// The "args" member of a CRM call's JSON (a view into it).
std::string_view args_of(const char* call_json);

}  // namespace e2e
