// pg_db.cpp: the PostgreSQL driver behind Db/Stmt, on libpq (issue 12; see db.h and README.md).
//
// A PgDb is a pool of up to DbOptions::pool_size connections, opened when first needed. A thread
// inside transaction()/with() holds one of them (nested calls on that thread reuse it), so prepare()
// and the statements it returns belong to that connection; each connection caches its own
// server-side prepared statements. A connection that breaks (server restart, network) is dropped
// when it is handed back, and the next caller opens a new one: the driver reconnects by itself.
//
// Values travel as text, except bytea parameters (sent binary). The parameter types come from the
// server (PQdescribePrepared), so a blob bound to a BYTEA column and a number bound to a TEXT one
// both arrive as the column expects. Results are text (int64() reads integers and booleans,
// text()/blob() decode bytea's hex), except for a prepared statement that returns a bytea column
// and only columns of the types binary_column() knows: its results come binary, so that a body
// travels as its bytes instead of twice as many hex digits the server encodes and we decode (the
// inbox's claims, issue 12).
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <bit>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/log.h"
#include "store/db.h"
#include "store/pg_dialect.h"

namespace fb::detail {
namespace {

constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23, kTextOid = 25, kOidOid = 26;
constexpr Oid kFloat4Oid = 700, kFloat8Oid = 701, kVarcharOid = 1043;

// The result types whose binary form the accessors below decode.
bool binary_column(Oid t) {
  switch (t) {
    case kBoolOid: case kByteaOid: case kInt8Oid: case kInt2Oid: case kInt4Oid: case kTextOid: case kOidOid:
    case kFloat4Oid: case kFloat8Oid: case kVarcharOid:
      return true;
    default:
      return false;
  }
}

// A big-endian integer of n bytes (network order, as PostgreSQL's binary format sends them).
uint64_t big_endian(const char* v, int n) {
  uint64_t x = 0;
  for (int i = 0; i < n; ++i) x = x << 8 | static_cast<unsigned char>(v[i]);
  return x;
}

bool is_text_type(Oid t) { return t == kTextOid || t == kVarcharOid || t == kByteaOid; }
// The store-wide write lock of an immediate transaction: pg_advisory_xact_lock(k), one key for the
// whole fleet ("fb_write", pg_dialect.h).
const std::string kWriteLock = "SELECT pg_advisory_xact_lock(" + std::to_string(kFleetWriteLockKey) + ")";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}

// bytea's text output ("\x" + hex) to bytes.
std::string decode_bytea(const char* v, int len) {
  if (len < 2 || v[0] != '\\' || v[1] != 'x') return std::string(v, static_cast<size_t>(len));
  std::string out;
  out.resize(static_cast<size_t>(len - 2) / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(hex_value(v[2 + 2 * i]) << 4 | hex_value(v[3 + 2 * i]));
  }
  return out;
}

bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

Status guarded(const std::function<Status()>& fn, const char* where) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("exception in ") + where + ": " + e.what());
  }
}

struct PgConn {
  PGconn* c = nullptr;
  std::unordered_map<std::string, Stmt> cache;
  int tx_depth = 0;
  // The first error of the open transaction: once a statement failed, PostgreSQL answers every
  // later one with "current transaction is aborted" (25P02), which would hide the cause.
  Status tx_error;
  int last_changes = 0;
  int next_name = 0;
  ~PgConn() {
    cache.clear();
    if (c) PQfinish(c);
  }
  bool bad() const { return PQstatus(c) != CONNECTION_OK; }
};

class PgDb;

class PgStmt final : public StmtDriver {
 public:
  // A server-side prepared statement (`name`; `sql` only names it in errors, by its beginning), or
  // (name empty) a one-off run of `sql` with PQexecParams.
  PgStmt(PgDb* db, PgConn* conn, std::string name, std::string sql, std::vector<Oid> types, bool binary = false)
      : db_(db), conn_(conn), name_(std::move(name)), sql_(std::move(sql)), types_(std::move(types)),
        binary_(binary) {
    if (!name_.empty() && sql_.size() > kSqlInErrors) sql_.resize(kSqlInErrors);
    values_.resize(types_.size());
    set_.assign(types_.size(), 0);
    blob_.assign(types_.size(), 0);
  }
  // A statement that could not be prepared because the connection failed: step() says so.
  PgStmt(Status failed) : failed_(std::move(failed)) {}
  ~PgStmt() override {
    if (res_) PQclear(res_);
  }

  void bind_int64(int i, int64_t v) override { put(i, std::to_string(v), false); }
  void bind_double(int i, double v) override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    put(i, buf, false);
  }
  void bind_text(int i, std::string_view v) override { put(i, std::string(v), false); }
  void bind_blob(int i, std::string_view bytes) override { put(i, std::string(bytes), true); }
  void bind_null(int i) override {
    if (i >= 1 && i <= static_cast<int>(set_.size())) set_[i - 1] = 0;
  }

  Result<bool> step() override;
  void reset() override {
    if (res_) PQclear(res_);
    res_ = nullptr;
    started_ = false;
    std::fill(set_.begin(), set_.end(), 0);
  }

  int64_t int64(int col) const override {
    if (PQgetisnull(res_, row_, col)) return 0;
    const char* v = PQgetvalue(res_, row_, col);
    const Oid t = PQftype(res_, col);
    if (binary_) {
      switch (t) {
        case kInt8Oid: return static_cast<int64_t>(big_endian(v, 8));
        case kInt4Oid: return static_cast<int32_t>(big_endian(v, 4));
        case kOidOid: return static_cast<uint32_t>(big_endian(v, 4));
        case kInt2Oid: return static_cast<int16_t>(big_endian(v, 2));
        case kBoolOid: return v[0] != 0;
        case kFloat4Oid: case kFloat8Oid: return static_cast<int64_t>(real(col));
        default: break;  // text: a value is followed by a zero byte in either format
      }
    }
    if (t == kBoolOid) return v[0] == 't';
    return std::strtoll(v, nullptr, 10);
  }
  double real(int col) const override {
    if (PQgetisnull(res_, row_, col)) return 0.0;
    const char* v = PQgetvalue(res_, row_, col);
    const Oid t = PQftype(res_, col);
    if (binary_ && t == kFloat8Oid) return std::bit_cast<double>(big_endian(v, 8));
    if (binary_ && t == kFloat4Oid) return std::bit_cast<float>(static_cast<uint32_t>(big_endian(v, 4)));
    if (binary_ && !is_text_type(t)) return static_cast<double>(int64(col));
    return std::strtod(v, nullptr);
  }
  std::string text(int col) const override {
    if (PQgetisnull(res_, row_, col)) return {};
    const char* v = PQgetvalue(res_, row_, col);
    int len = PQgetlength(res_, row_, col);
    const Oid t = PQftype(res_, col);
    if (binary_ && !is_text_type(t)) {  // a number or boolean read as text: as the text format has it
      if (t == kBoolOid) return v[0] ? "t" : "f";
      if (t == kFloat4Oid || t == kFloat8Oid) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", real(col));
        return buf;
      }
      return std::to_string(int64(col));
    }
    if (t == kByteaOid && !binary_) return decode_bytea(v, len);
    return std::string(v, static_cast<size_t>(len));
  }
  std::string blob(int col) const override { return text(col); }
  bool is_null(int col) const override { return PQgetisnull(res_, row_, col) != 0; }

 private:
  void put(int i, std::string v, bool blob) {
    if (i < 1 || i > static_cast<int>(set_.size())) return;  // like SQLite: out of range is ignored
    values_[i - 1] = std::move(v);
    set_[i - 1] = 1;
    blob_[i - 1] = blob;
  }

  static constexpr size_t kSqlInErrors = 60;
  PgDb* db_ = nullptr;
  PgConn* conn_ = nullptr;
  std::string name_, sql_;
  std::vector<Oid> types_;
  std::vector<std::string> values_;
  std::vector<char> set_, blob_;
  bool binary_ = false;  // results in binary format (see the top of this file)
  PGresult* res_ = nullptr;
  int row_ = 0, rows_ = 0;
  bool started_ = false;
  Status failed_;
};

class PgDb final : public Db {
 public:
  PgDb(const std::string& url, const DbOptions& o)
      : Db(redact_url(url), true), url_(url), pool_size_(o.pool_size < 1 ? 1 : o.pool_size),
        busy_timeout_ms_(o.busy_timeout_ms) {}
  ~PgDb() override = default;

  Engine engine() const override { return Engine::kPostgres; }
  Status do_transaction(const std::function<Status()>& fn, bool immediate) override {
    return transact(fn, immediate, deadline_after(busy_timeout_ms_), false);
  }
  Status do_transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn,
                              bool immediate) override {
    return transact(fn, immediate, deadline, true);
  }
  Status with(const std::function<Status()>& fn) override {
    if (current()) return guarded(fn, "database work");
    FB_ASSIGN(PgConn * c, acquire(deadline_after(busy_timeout_ms_)));
    Hold hold(this, c);
    return guarded(fn, "database work");
  }
  Stmt& prepare(std::string_view sql) override;
  Result<Stmt> prepare_uncached(std::string_view sql) override;
  Status exec(std::string_view sql) override;
  int64_t last_insert_rowid() const override;
  int changes() const override {
    PgConn* c = current();
    return c ? c->last_changes : 0;
  }
  Result<bool> has_table(std::string_view table) override;
  Result<int64_t> highest_id_given(std::string_view table) override;
  std::unique_ptr<DbNotifications> listen(const std::string& channel) override;
  Status last_error(std::string_view what) const override {
    PgConn* c = current();
    return Status::Io(std::string(what) + ": " + (c ? PQerrorMessage(c->c) : "no connection"));
  }

  // Opens the first connection, so that open() fails when the server cannot be reached.
  Status init() {
    FB_ASSIGN(PgConn * c, acquire(deadline_after(busy_timeout_ms_)));
    release(c);
    return ensure_migrations_table();
  }

  // The server's error from its fields, always in one form: "ERROR:  <message>[ at character N]"
  // and its DETAIL and HINT lines. libpq's own text shows the position as "LINE 1: ..." with a
  // caret when it still holds the query, and as "at character N" when it does not (a prepared
  // statement run), so one failure read two ways would be two reasons to the log's limiter.
  // Empty when res carries no server error (the connection failed).
  static std::string server_message(const PGresult* res) {
    const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (primary == nullptr) return {};
    const char* severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
    std::string m = std::string(severity ? severity : "ERROR") + ":  " + primary;
    if (const char* pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) m += std::string(" at character ") + pos;
    if (const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) m += std::string("\nDETAIL:  ") + detail;
    if (const char* hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT)) m += std::string("\nHINT:  ") + hint;
    return m;
  }

  // The Status for a failed command on c: SQLSTATE mapped to our codes, the store named when the
  // connection itself failed.
  Status error_of(PgConn* c, const PGresult* res, std::string_view what = {}) const {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = server_message(res);
    if (msg.empty()) msg = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(c->c);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (!what.empty()) msg = std::string(what) + ": " + msg;
    std::string s = state ? state : "";
    if (s == "25P02" && !c->tx_error.ok()) return c->tx_error;  // aborted by that error: say it again
    Status e;
    if (c->bad() || s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03") {
      e = Status::Unavailable("store " + path() + " is unreachable: " + msg);
    } else if (s.rfind("23", 0) == 0) {
      e = Status::AlreadyExists("postgresql: " + msg);
    } else if (s == "40001" || s == "40P01" || s == "55P03") {
      e = Status(Code::kConflict, "postgresql: " + msg);
    } else {
      e = Status::Io("postgresql: " + msg);
    }
    if (c->tx_depth > 0 && c->tx_error.ok()) c->tx_error = e;
    return e;
  }

  // Bookkeeping after a statement on c succeeded.
  void executed(PgConn* c, const PGresult* res) {
    const char* status = PQcmdStatus(const_cast<PGresult*>(res));
    if (starts_with(status, "INSERT") || starts_with(status, "UPDATE") || starts_with(status, "DELETE")) {
      c->last_changes = std::atoi(PQcmdTuples(const_cast<PGresult*>(res)));
      if (c->tx_depth == 0) count_commit();  // an autocommit write (counted like SQLite's commit hook)
    }
  }

 private:
  using Clock = std::chrono::steady_clock;
  static Clock::time_point deadline_after(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }

  struct Held {
    const PgDb* db;
    PgConn* conn;
  };
  static thread_local std::vector<Held> held_;
  // Puts c in this thread's hands for the scope, then back into the pool.
  struct Hold {
    Hold(PgDb* db, PgConn* c) : db_(db), c_(c) { held_.push_back({db, c}); }
    ~Hold() {
      held_.pop_back();
      db_->release(c_);
    }
    PgDb* db_;
    PgConn* c_;
  };

  PgConn* current() const {
    for (auto it = held_.rbegin(); it != held_.rend(); ++it) {
      if (it->db == this) return it->conn;
    }
    return nullptr;
  }

  Result<PgConn*> acquire(Clock::time_point deadline);
  void release(PgConn* c);
  Result<std::unique_ptr<PgConn>> connect();
  Status transact(const std::function<Status()>& fn, bool immediate, Clock::time_point deadline, bool until);
  Status run_transaction(PgConn* c, const std::function<Status()>& fn, bool immediate, Clock::time_point deadline,
                         bool until);
  // Runs sql (no parameters) on c; the Status names the store when the connection failed.
  Status simple(PgConn* c, const std::string& sql);

  const std::string url_;
  const int pool_size_;
  const int busy_timeout_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> conns_;  // guarded by mu_
  std::vector<PgConn*> idle_;                   // guarded by mu_
  int opening_ = 0;                             // guarded by mu_
};

thread_local std::vector<PgDb::Held> PgDb::held_;

void quiet_notices(void*, const char*) {}  // "relation already exists, skipping" and the like

// A new connection to url (`shown`: the URL without its password, for the message).
Result<PGconn*> open_connection(const std::string& url, const std::string& shown) {
  // Defaults before the URL (which is expanded from "dbname"), so that the URL's own values win.
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* vals[] = {"10", "fathom-bridge", url.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, vals, 1);
  if (!c) return Status::Unavailable("store " + shown + ": out of memory connecting");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = PQerrorMessage(c);
    PQfinish(c);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return Status::Unavailable("store " + shown + " is unreachable: " + m);
  }
  PQsetNoticeProcessor(c, quiet_notices, nullptr);
  return c;
}

Result<std::unique_ptr<PgConn>> PgDb::connect() {
  FB_ASSIGN(PGconn * c, open_connection(url_, path()));
  auto conn = std::make_unique<PgConn>();
  conn->c = c;
  return conn;
}

// LISTEN on a connection of its own; wait() polls its socket and an eventfd (interrupt()).
class PgNotifications final : public DbNotifications {
 public:
  PgNotifications(std::string url, std::string shown, std::string channel)
      : url_(std::move(url)), shown_(std::move(shown)), channel_(std::move(channel)),
        wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~PgNotifications() override {
    if (c_) PQfinish(c_);
    if (wake_ >= 0) ::close(wake_);
  }

  std::vector<std::string> wait(std::chrono::milliseconds timeout) override {
    std::vector<std::string> got;
    if (!c_ && !reconnect()) {
      sleep_or_interrupt(timeout);  // the server is away: try again at the next call
      return got;
    }
    drain(&got);
    if (!got.empty()) return got;
    pollfd fds[2] = {{PQsocket(c_), POLLIN, 0}, {wake_, POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(timeout.count()));
    if (n > 0 && (fds[1].revents & POLLIN)) clear_wake();
    if (n > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
      if (!PQconsumeInput(c_) || PQstatus(c_) != CONNECTION_OK) {
        FB_LOG(kWarn, "store") << "lost the LISTEN connection to " << shown_ << " (reconnecting): " << PQerrorMessage(c_);
        drop();
        return got;
      }
      drain(&got);
    }
    return got;
  }
  void interrupt() override {
    uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }
  // Connects and LISTENs; false (wait() tries again) when the server is away.
  bool reconnect() {
    auto made = open_connection(url_, shown_);
    if (!made.ok()) return false;
    c_ = *made;
    char* quoted = PQescapeIdentifier(c_, channel_.c_str(), channel_.size());
    PGresult* r = PQexec(c_, (std::string("LISTEN ") + (quoted ? quoted : "\"\"")).c_str());
    if (quoted) PQfreemem(quoted);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) drop();
    return ok;
  }

 private:
  void drop() {
    if (c_) PQfinish(c_);
    c_ = nullptr;
  }
  void drain(std::vector<std::string>* out) {
    while (PGnotify* n = PQnotifies(c_)) {
      out->emplace_back(n->extra ? n->extra : "");
      PQfreemem(n);
    }
  }
  void sleep_or_interrupt(std::chrono::milliseconds timeout) {
    pollfd fd = {wake_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(timeout.count())) > 0) clear_wake();
  }
  void clear_wake() {
    uint64_t v;
    (void)!::read(wake_, &v, sizeof v);
  }

  const std::string url_, shown_, channel_;
  const int wake_;
  PGconn* c_ = nullptr;
};

std::unique_ptr<DbNotifications> PgDb::listen(const std::string& channel) {
  auto n = std::make_unique<PgNotifications>(url_, path(), channel);
  // Listening before this returns: a notification sent after it (another host's new event) is
  // kept for the first wait(), not lost while the listener thread starts and connects. A server
  // that is away now is tried again by wait().
  (void)n->reconnect();
  return n;
}

Result<PgConn*> PgDb::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!idle_.empty()) {
      PgConn* c = idle_.back();
      idle_.pop_back();
      if (!c->bad()) return c;
      std::erase_if(conns_, [c](const auto& p) { return p.get() == c; });  // the server went away
      continue;
    }
    if (static_cast<int>(conns_.size()) + opening_ < pool_size_) {
      ++opening_;
      lock.unlock();
      auto made = connect();
      lock.lock();
      --opening_;
      if (!made.ok()) {
        cv_.notify_one();
        return made.status();
      }
      conns_.push_back(std::move(made).value());
      return conns_.back().get();
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty()) {
      return Status::Unavailable("store " + path() + ": all " + std::to_string(pool_size_) +
                                 " connections stayed busy past the deadline (store.pool_size)");
    }
  }
}

void PgDb::release(PgConn* c) {
  std::lock_guard lock(mu_);
  if (c->bad()) {
    std::erase_if(conns_, [c](const auto& p) { return p.get() == c; });
  } else {
    idle_.push_back(c);
  }
  cv_.notify_one();
}

Status PgDb::simple(PgConn* c, const std::string& sql) {
  PGresult* r = PQexec(c->c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  Status s = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? Status::Ok() : error_of(c, r);
  if (s.ok()) executed(c, r);
  PQclear(r);
  return s;
}

Status PgDb::transact(const std::function<Status()>& fn, bool immediate, Clock::time_point deadline, bool until) {
  if (PgConn* c = current()) {
    if (c->tx_depth > 0) {  // join the outer transaction
      ++c->tx_depth;
      Status s = guarded(fn, "transaction");
      --c->tx_depth;
      return s;
    }
    return run_transaction(c, fn, immediate, deadline, until);
  }
  FB_ASSIGN(PgConn * c, acquire(deadline));
  Hold hold(this, c);
  return run_transaction(c, fn, immediate, deadline, until);
}

Status PgDb::run_transaction(PgConn* c, const std::function<Status()>& fn, bool immediate,
                             Clock::time_point deadline, bool until) {
  std::string begin = "BEGIN";
  if (immediate || until) {
    // The write lock waits at most until the deadline. A caller with a deadline of its own
    // (transaction_until) also gets every lock wait inside the transaction bounded by it: a table
    // another session holds locked would otherwise keep it waiting without end, where SQLite's busy
    // timeout ends the wait. For the others the lock timeout is for the write lock only.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Status::Unavailable("store " + path() + ": no time left before the deadline");
    begin += "; SET LOCAL lock_timeout = " + std::to_string(left);
    if (immediate) begin += std::string("; ") + kWriteLock;
    if (!until) begin += "; SET LOCAL lock_timeout = 0";
  }
  Status b = simple(c, begin);
  if (!b.ok()) {
    if (!c->bad()) (void)simple(c, "ROLLBACK");
    if (b.is(Code::kConflict)) {
      if (until) return Status::Unavailable("store " + path() + ": the write lock stayed taken past the deadline");
      return Status(Code::kConflict, "store " + path() + ": waited " + std::to_string(busy_timeout_ms_) +
                                         " ms for the write lock: " + b.message());
    }
    return b;
  }
  c->tx_depth = 1;
  c->tx_error = Status::Ok();
  Status s = guarded(fn, "transaction");
  c->tx_depth = 0;
  if (s.ok()) {
    Status done = simple(c, "COMMIT");
    if (done.ok()) {
      count_commit();
      return s;
    }
    s = done;
  }
  if (!c->bad()) (void)simple(c, "ROLLBACK");
  return s;
}

Stmt& PgDb::prepare(std::string_view sql) {
  PgConn* c = current();
  if (!c) throw std::logic_error("postgresql: prepare() outside transaction()/with(): " + std::string(sql));
  auto it = c->cache.find(std::string(sql));
  if (it != c->cache.end()) {
    it->second.reset();
    return it->second;
  }
  std::string name = "fb" + std::to_string(++c->next_name);
  std::string translated = to_postgres_sql(sql);
  PGresult* r = PQprepare(c->c, name.c_str(), translated.c_str(), 0, nullptr);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  Status failed = ok ? Status::Ok() : error_of(c, r);
  PQclear(r);
  std::vector<Oid> types;
  bool binary = false;
  if (ok) {
    PGresult* d = PQdescribePrepared(c->c, name.c_str());
    ok = PQresultStatus(d) == PGRES_COMMAND_OK;
    if (ok) {
      for (int i = 0; i < PQnparams(d); ++i) types.push_back(PQparamtype(d, i));
      bool all_known = true;
      for (int i = 0; i < PQnfields(d); ++i) {
        binary |= PQftype(d, i) == kByteaOid;
        all_known &= binary_column(PQftype(d, i));
      }
      binary &= all_known;
    } else {
      failed = error_of(c, d);
    }
    PQclear(d);
  }
  if (!ok) {
    // A connection that failed: the statement's step() reports it (and the caller's transaction
    // fails with it). Inside a failed transaction: the same. Bad SQL is a bug in our own code: loud.
    bool aborted = PQtransactionStatus(c->c) == PQTRANS_INERROR;
    if (!failed.is(Code::kUnavailable) && !aborted) {
      throw std::logic_error("postgresql prepare failed: " + failed.message() + " in: " + translated);
    }
    auto [pos, _] = c->cache.emplace("\x01" + name, Stmt(std::make_unique<PgStmt>(failed)));
    return pos->second;
  }
  auto [pos, _] = c->cache.emplace(std::string(sql), Stmt(std::make_unique<PgStmt>(this, c, name, translated, std::move(types), binary)));
  return pos->second;
}

Result<Stmt> PgDb::prepare_uncached(std::string_view sql) {
  PgConn* c = current();
  if (!c) return Status::Internal("postgresql: prepare_uncached() outside transaction()/with()");
  int n = 0;
  std::string translated = to_postgres_sql(sql, &n);
  return Stmt(std::make_unique<PgStmt>(this, c, "", std::move(translated), std::vector<Oid>(static_cast<size_t>(n), 0)));
}

Result<bool> PgStmt::step() {
  if (!failed_.ok()) return failed_;
  if (started_) return ++row_ < rows_;
  started_ = true;
  const int n = static_cast<int>(types_.size());
  std::vector<const char*> vals(static_cast<size_t>(n));
  std::vector<int> lens(static_cast<size_t>(n)), fmts(static_cast<size_t>(n));
  std::vector<Oid> types = types_;
  for (int i = 0; i < n; ++i) {
    if (!set_[i]) continue;  // NULL
    bool binary = types_[i] == kByteaOid || (types_[i] == 0 && blob_[i]);
    if (binary && types[i] == 0) types[i] = kByteaOid;
    // libpq sends a text parameter up to its first NUL: the rest would be dropped without a word.
    if (!binary && values_[i].find('\0') != std::string::npos) {
      started_ = false;
      return Status::InvalidArgument("postgresql: parameter " + std::to_string(i + 1) +
                                     " is text with a NUL character, which PostgreSQL cannot store (in: " +
                                     sql_.substr(0, kSqlInErrors) + "...)");
    }
    vals[i] = values_[i].c_str();
    lens[i] = static_cast<int>(values_[i].size());
    fmts[i] = binary ? 1 : 0;
  }
  res_ = name_.empty() ? PQexecParams(conn_->c, sql_.c_str(), n, types.data(), vals.data(), lens.data(), fmts.data(), 0)
                       : PQexecPrepared(conn_->c, name_.c_str(), n, vals.data(), lens.data(), fmts.data(), binary_);
  ExecStatusType st = PQresultStatus(res_);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status e = db_->error_of(conn_, res_);
    PQclear(res_);
    res_ = nullptr;
    started_ = false;
    return e;
  }
  db_->executed(conn_, res_);
  row_ = 0;
  rows_ = PQntuples(res_);
  return rows_ > 0;
}

Status PgDb::exec(std::string_view sql) {
  PgConn* c = current();
  if (!c) return Status::Internal("postgresql: exec() outside transaction()/with()");
  return simple(c, to_postgres_sql(sql));
}

int64_t PgDb::last_insert_rowid() const {
  PgConn* c = current();
  if (!c) return 0;
  // lastval(): the value the last nextval() of this session gave (the INSERT's BIGSERIAL id).
  // REQUIRES (db.h): an INSERT into a table with such an id came first on this connection.
  PGresult* r = PQexec(c->c, "SELECT lastval()");
  int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0) ? std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10) : 0;
  PQclear(r);
  return v;
}

Result<bool> PgDb::has_table(std::string_view table) {
  FB_ASSIGN(auto v, first_int("SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?", table));
  return v.has_value();
}

Result<int64_t> PgDb::highest_id_given(std::string_view table) {
  FB_ASSIGN(auto v, first_int("SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence(?, 'id')), 0)", table));
  return v.value_or(0);
}

}  // namespace

Result<std::unique_ptr<Db>> open_postgres(const std::string& url, DbOptions options) {
  auto db = std::make_unique<PgDb>(url, options);
  FB_TRY(db->init());
  return std::unique_ptr<Db>(std::move(db));
}

}  // namespace fb::detail
