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
