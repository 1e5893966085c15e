// pg_server.h: a throwaway PostgreSQL of one test's own (tests/support/pg_server.sh), for tests that
// stop the server on purpose: the shared one of the "postgresql" CTest fixture serves suites
// running beside them.
//
//   PrivatePostgres pg;                   // initdb + start (a few seconds), Unix socket only
//   Db::open(pg.url()) ...
//   pg.halt();                            // fast shutdown: connections break, new ones are refused
//   pg.resume();                          // the same data, port and socket again
// Its directory is /tmp/fb-pgp-XXXXXX (reachable by the user `postgres`, who runs the server when
// the tests run as root). The destructor stops it and deletes that directory. Throws std::runtime_error when a step fails.
#pragma once

#include <string>

namespace fb::test {

class PrivatePostgres {
 public:
  PrivatePostgres();
  ~PrivatePostgres();
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  // "postgresql:///postgres?host=DIR&port=N&user=fb": its maintenance database.
  const std::string& url() const { return url_; }
  void halt();
  void resume();

 private:
  void run(const std::string& command);
  std::string dir_, url_;
};

}  // namespace fb::test
