// The PostgreSQL driver's SQL translation (plugin/store/pg_dialect.h), on the constructs the
// stores use. The suites' _postgresql variants run the translated SQL on a real server.
#include <boost/test/unit_test.hpp>

#include "store/pg_dialect.h"

using fb::detail::to_postgres_sql;

BOOST_AUTO_TEST_SUITE(pg_dialect)

BOOST_AUTO_TEST_CASE(placeholders_are_numbered_outside_literals_and_comments) {
  int n = 0;
  BOOST_TEST(to_postgres_sql("SELECT a FROM t WHERE b=? AND c='?' AND \"?\"=? -- ?\n AND d=?", &n) ==
             "SELECT a FROM t WHERE b=$1 AND c='?' AND \"?\"=$2 -- ?\n AND d=$3");
  BOOST_TEST(n == 3);
  BOOST_TEST(to_postgres_sql("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', $1");
  BOOST_TEST(to_postgres_sql("WHERE (?1 = 0 OR id = ?1) LIMIT ?2 OFFSET ?", &n) == "WHERE ($1 = 0 OR id = $1) LIMIT $2 OFFSET $3");
  BOOST_TEST(n == 3);
}

BOOST_AUTO_TEST_CASE(sqlite_types_and_rowid_tables_become_postgresql_ones) {
  BOOST_TEST(to_postgres_sql("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, r REAL, n integer)") ==
             "CREATE TABLE t(id BIGSERIAL PRIMARY KEY, b BYTEA, r DOUBLE PRECISION, n BIGINT)");
  BOOST_TEST(to_postgres_sql("CREATE TABLE k(a TEXT, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID;") ==
             "CREATE TABLE k(a TEXT, b BIGINT, PRIMARY KEY (a, b)) ;");
  BOOST_TEST(to_postgres_sql("CREATE TABLE s(id INTEGER PRIMARY KEY CHECK (id = 1))") ==
             "CREATE TABLE s(id BIGSERIAL PRIMARY KEY CHECK (id = 1))");
  // Words that merely contain a type name, and literals, stay.
  BOOST_TEST(to_postgres_sql("SELECT blobs, integer_x, 'BLOB' FROM realm") == "SELECT blobs, integer_x, 'BLOB' FROM realm");
}

BOOST_AUTO_TEST_CASE(scalar_max_and_min_become_greatest_and_least) {
  BOOST_TEST(to_postgres_sql("UPDATE t SET v=MAX(v, ?), w=min(COALESCE(w, 0), f(1, 2)) WHERE x=(SELECT MAX(id) FROM t)") ==
             "UPDATE t SET v=GREATEST(v, $1), w=LEAST(COALESCE(w, 0), f(1, 2)) WHERE x=(SELECT MAX(id) FROM t)");
  BOOST_TEST(to_postgres_sql("SELECT MAX((a), ',') FROM t") == "SELECT GREATEST((a), ',') FROM t");
  BOOST_TEST(to_postgres_sql("SELECT MAX(f(a, b)) FROM t") == "SELECT MAX(f(a, b)) FROM t");
}

BOOST_AUTO_TEST_SUITE_END()
