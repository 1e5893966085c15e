#include "support/pg_server.h"

#include <stdlib.h>

#include <cstdlib>
#include <stdexcept>

#include "support/temp_dir.h"

namespace fb::test {

PrivatePostgres::PrivatePostgres() {
  char tmpl[] = "/tmp/fb-pgp-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("cannot make a directory for a private PostgreSQL in /tmp");
  dir_ = tmpl;
  run("start");
  url_ = read_file(dir_ + "/url");
  while (!url_.empty() && (url_.back() == '\n' || url_.back() == ' ')) url_.pop_back();
  if (url_.empty()) throw std::runtime_error("pg_server.sh start " + dir_ + " wrote no URL");
}

PrivatePostgres::~PrivatePostgres() {
  try {
    run("stop");
  } catch (...) {
  }
}

void PrivatePostgres::halt() { run("halt"); }
void PrivatePostgres::resume() { run("resume"); }

void PrivatePostgres::run(const std::string& command) {
  const std::string line = std::string("'") + FB_SOURCE_DIR + "/tests/support/pg_server.sh' " + command + " '" + dir_ + "'";
  if (std::system(line.c_str()) != 0) throw std::runtime_error("failed: " + line);
}

}  // namespace fb::test
