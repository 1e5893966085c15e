// temp_dir.h: a unique temporary directory for one test, removed with everything in it afterwards.
#pragma once

#include <string>

namespace fb::test {

// Created under $TMPDIR (or /tmp) as "fb-test-XXXXXX". Set FB_KEEP_TEMP=1 to keep it for a
// post-mortem. Not copyable; not thread-safe to destroy while another thread writes into it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name. The file is not created.
  std::string file(const std::string& name) const;
  // The store a test opens as `name`: the SQLite file file(name), or, when the suite runs on
  // PostgreSQL (store_engine_is_postgres()), the URL of a database of its own for this directory
  // and name, created on first use (the same name gives the same database, in every process).
  // Defined in store_target.cpp.
  std::string store(const std::string& name) const;

 private:
  std::string path_;
};

// Whether this run's stores are PostgreSQL: CTest runs a suite's "_postgresql" variant with
// FB_TEST_POSTGRES set to the directory of the throwaway server (tests/support/pg_server.sh).
bool store_engine_is_postgres();
// The server's URL for that run ("" on SQLite runs), to its maintenance database `postgres`.
std::string postgres_server_url();

// The config key naming a store target in the "store" section: "url" for a PostgreSQL URL, "path"
// for a SQLite file, e.g. {"store": {{store_key(t), t}}} with t = dir.store("x.db").
std::string store_key(const std::string& target);

// Everything a store holds, for scans that look for a secret that must not be stored in clear:
// a SQLite file with its WAL, or every row of every table of a PostgreSQL database as text (bytea
// in escape form, so bytes that are printable read as themselves).
std::string stored_bytes(const std::string& target);

// The whole content of a file ("" when it cannot be read), e.g. a log or database file a test checks.
std::string read_file(const std::string& path);

}  // namespace fb::test
