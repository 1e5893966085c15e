// store_target.cpp: TempDir::store(), the one place that decides which engine a test's store is.
#include <libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "support/temp_dir.h"

namespace fb::test {

bool store_engine_is_postgres() {
  const char* d = std::getenv("FB_TEST_POSTGRES");
  return d && *d;
}

std::string postgres_server_url() {
  if (!store_engine_is_postgres()) return "";
  std::string dir = std::getenv("FB_TEST_POSTGRES");
  std::ifstream in(dir + "/url");
  std::string url;
  if (!std::getline(in, url) || url.empty()) {
    throw std::runtime_error("FB_TEST_POSTGRES=" + dir + " but " + dir + "/url is missing: is the fixture "
                             "fb_postgresql_start running (tests/support/pg_server.sh start " + dir + ")?");
  }
  return url;
}

std::string store_key(const std::string& target) {
  return target.rfind("postgresql://", 0) == 0 || target.rfind("postgres://", 0) == 0 ? "url" : "path";
}

namespace {

// Runs sql on c; the rows' first column, each followed by a newline.
std::string query_text(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  std::string out;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    for (int i = 0; i < PQntuples(r); ++i) out.append(PQgetvalue(r, i, 0)).append("\n");
  } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    std::string m = PQresultErrorMessage(r);
    PQclear(r);
    throw std::runtime_error(sql + ": " + m);
  }
  PQclear(r);
  return out;
}

}  // namespace

std::string stored_bytes(const std::string& target) {
  if (store_key(target) == "path") return read_file(target) + read_file(target + "-wal");
  PGconn* c = PQconnectdb(target.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot reach " + target + ": " + m);
  }
  std::string out;
  try {
    query_text(c, "SET bytea_output = 'escape'");
    std::string tables = query_text(c, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()");
    size_t at = 0;
    for (size_t nl; (nl = tables.find('\n', at)) != std::string::npos; at = nl + 1) {
      const std::string t = tables.substr(at, nl - at);
      out += query_text(c, "SELECT CAST(x AS TEXT) FROM \"" + t + "\" AS x");
    }
  } catch (...) {
    PQfinish(c);
    throw;
  }
  PQfinish(c);
  return out;
}

std::string TempDir::store(const std::string& name) const {
  if (!store_engine_is_postgres()) return file(name);
  // FNV-1a of the path: the same directory and name give the same database in every process.
  uint64_t h = 1469598103934665603ull;
  for (char c : file(name)) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char db[32];
  std::snprintf(db, sizeof db, "fbt_%016llx", static_cast<unsigned long long>(h));
  const std::string server = postgres_server_url();  // ".../postgres?host=...&port=...&user=fb"
  const size_t at = server.find("/postgres?");
  if (at == std::string::npos) throw std::runtime_error("unexpected test server URL: " + server);
  PGconn* c = PQconnectdb(server.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot reach the test PostgreSQL at " + server + ": " + m);
  }
  PGresult* r = PQexec(c, (std::string("CREATE DATABASE ") + db).c_str());
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || (state && (std::string(state) == "42P04" || std::string(state) == "23505"));  // exists
  std::string m = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(std::string("CREATE DATABASE ") + db + ": " + m);
  return server.substr(0, at) + "/" + db + server.substr(at + 9);
}

}  // namespace fb::test
