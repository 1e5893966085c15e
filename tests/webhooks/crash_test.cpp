// Durability across a crash: a receiving process (fb_webhook_crash_receiver) acknowledges a
// delivery and is killed with SIGKILL before it processes it; after a restart the event is
// processed. And a process killed while processing: the event is reclaimed after the restart.
// Also run as fb_webhooks_crash_test_postgresql (issue 12): the store is then a database on the
// throwaway PostgreSQL (TempDir::store), and a body is in its inbox row instead of the body log.
#define BOOST_TEST_MODULE fb_webhooks_crash
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <sstream>

#include "fixture.h"
#include "support/http.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

std::string receiver_binary() { return std::string(FB_BINARY_DIR) + "/tests/webhooks/fb_webhook_crash_receiver"; }

// One run of the receiving process.
class ReceiverProcess {
 public:
  ReceiverProcess(const TempDir& dir, std::vector<std::string> extra) {
    std::vector<std::string> args = {receiver_binary(), "--db",  dir.store("bridge.db"), "--secret",
                                     kSecretA,          "--log", dir.file("processed.log")};
    args.insert(args.end(), extra.begin(), extra.end());
    // On PostgreSQL (a fleet's store) a restarted process cannot tell its killed predecessor's
    // claims from a live host's: they return to the pool when their lease runs out, short here.
    if (store_engine_is_postgres()) args.insert(args.end(), {"--claim-lease-ms", "1000"});
    int fds[2];
    BOOST_REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    BOOST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    // The first line within 10 s: "listening <port> <path>".
    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      if (poll(&p, 1, 100) > 0) {
        char buf[256];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
      }
    }
    close(fds[0]);
    std::istringstream in(line);
    std::string word;
    in >> word >> port_ >> path_;
    BOOST_REQUIRE_MESSAGE(word == "listening" && port_ > 0, "receiver did not start: '" << line << "'");
  }
  ~ReceiverProcess() { kill_now(SIGKILL); }

  // Whether the process ended by itself (reaped); the signal that ended it in *sig.
  bool exited(int* sig) {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return true;
  }

  void kill_now(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  HttpReply deliver(const std::string& id, const std::string& body) {
    HttpCall call;
    call.method = "POST";
    call.url = "http://127.0.0.1:" + std::to_string(port_) + path_;
    call.body = body;
    call.content_type = "application/json";
    for (auto& [k, v] : signed_headers(kSecretA, id, std::time(nullptr), body)) {
      if (k != "Content-Type") call.headers.emplace(k, v);
    }
    return http_request(call);
  }
  const std::string& path() const { return path_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string path_;
};

// Reads a column of the inbox from the test process (its own connection to the same store).
std::string column_of(const TempDir& dir, const std::string& webhook_id, const std::string& column) {
  auto db = Db::open(dir.store("bridge.db"));
  BOOST_REQUIRE(db.ok());
  std::string value = "absent";
  BOOST_REQUIRE((*db)->with([&]() -> Status {
                     Stmt& q = (*db)->prepare("SELECT " + column + " FROM webhook_inbox WHERE webhook_id=?");
                     q.bind(1, webhook_id);
                     FB_ASSIGN(bool row, q.step());
                     if (row) value = q.text(0);
                     q.reset();
                     return Status::Ok();
                   }).ok());
  return value;
}

std::string status_of(const TempDir& dir, const std::string& webhook_id) {
  return column_of(dir, webhook_id, "status");
}

int times_processed(const TempDir& dir, int64_t recording_id) {
  std::istringstream in(read_file(dir.file("processed.log")));
  int n = 0;
  for (std::string l; std::getline(in, l);) n += l == std::to_string(recording_id);
  return n;
}

int times_mapped(const TempDir& dir, int64_t recording_id) {
  std::istringstream in(read_file(dir.file("processed.log")));
  int n = 0;
  for (std::string l; std::getline(in, l);) n += l == "map " + std::to_string(recording_id);
  return n;
}

int64_t events_with_status(const TempDir& dir, const std::string& status) {
  auto db = Db::open(dir.store("bridge.db"));
  BOOST_REQUIRE(db.ok());
  return scalar(**db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='" + status + "'");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crash)

BOOST_AUTO_TEST_CASE(killed_right_after_acknowledging_then_processed_after_restart) {
  TempDir dir;
  std::string path;
  {
    ReceiverProcess rx(dir, {"--workers", "0"});  // acknowledges, never processes
    path = rx.path();
    auto r = rx.deliver("msg_crash_1", meeting_body(777001));
    BOOST_REQUIRE(r.status == 200);
    BOOST_TEST(r.header("Webhook-Result") == "accepted");
    rx.kill_now(SIGKILL);  // no shutdown code runs: only what was committed survives
  }
  BOOST_TEST(status_of(dir, "msg_crash_1") == "pending");
  BOOST_TEST(times_processed(dir, 777001) == 0);
  if (store_engine_is_postgres()) {
    // The body survived the kill in the row (no local files in a fleet's store).
    BOOST_TEST(column_of(dir, "msg_crash_1", "body") == meeting_body(777001));
    BOOST_TEST(column_of(dir, "msg_crash_1", "body_segment").empty());
  } else {
    // The body survived the kill in the body log, not in the row.
    BOOST_TEST(column_of(dir, "msg_crash_1", "length(body)") == "0");
    std::string segment = column_of(dir, "msg_crash_1", "body_segment");
    BOOST_REQUIRE(!segment.empty());
    BOOST_TEST(read_file(dir.file("bridge.db-webhook-bodies/" + segment)).find(meeting_body(777001)) != std::string::npos);
  }

  ReceiverProcess again(dir, {"--workers", "1"});
  BOOST_TEST(again.path() == path);  // the same registration after the restart
  BOOST_TEST(wait_until([&] { return status_of(dir, "msg_crash_1") == "done"; }, 20));
  BOOST_TEST(times_processed(dir, 777001) == 1);
  // The sender retries the acknowledged delivery: still processed once.
  auto dup = again.deliver("msg_crash_1", meeting_body(777001));
  BOOST_TEST(dup.status == 200);
  BOOST_TEST(dup.header("Webhook-Result") == "duplicate");
  again.kill_now(SIGTERM);
  BOOST_TEST(times_processed(dir, 777001) == 1);
}

BOOST_AUTO_TEST_CASE(killed_while_processing_then_reclaimed_after_restart) {
  TempDir dir;
  {
    ReceiverProcess rx(dir, {"--workers", "1", "--hang"});  // the pipeline never returns
    BOOST_REQUIRE(rx.deliver("msg_crash_2", meeting_body(777002)).status == 200);
    BOOST_REQUIRE(wait_until([&] { return status_of(dir, "msg_crash_2") == "processing"; }, 20));
    rx.kill_now(SIGKILL);
  }
  BOOST_TEST(status_of(dir, "msg_crash_2") == "processing");
  ReceiverProcess again(dir, {"--workers", "1"});
  BOOST_TEST(wait_until([&] { return status_of(dir, "msg_crash_2") == "done"; }, 20));
  BOOST_TEST(times_processed(dir, 777002) == 1);
}

BOOST_AUTO_TEST_CASE(killed_at_a_batch_boundary_then_every_event_mapped_exactly_once) {
  TempDir dir;
  constexpr int kEvents = 24;
  constexpr int64_t kFirst = 778000;
  {
    ReceiverProcess rx(dir, {"--workers", "0"});
    for (int i = 0; i < kEvents; ++i) {
      auto r = rx.deliver("msg_batch_" + std::to_string(i), meeting_body(kFirst + i));
      BOOST_REQUIRE(r.status == 200);
    }
    rx.kill_now(SIGKILL);
  }
  {
    // Batches of 8: the process kills itself right after the first batch's commit, which also
    // claimed the second batch (nothing of it mapped yet).
    ReceiverProcess rx(dir, {"--workers", "1", "--claim-batch", "8", "--die-after-batches", "1"});
    int sig = 0;
    BOOST_REQUIRE(wait_until([&] { return rx.exited(&sig); }, 30));
    BOOST_TEST(sig == SIGKILL);
  }
  BOOST_TEST(events_with_status(dir, "done") == 8);
  BOOST_TEST(events_with_status(dir, "processing") == 8);
  BOOST_TEST(events_with_status(dir, "pending") == 8);
  int mapped_before = 0;
  for (int i = 0; i < kEvents; ++i) mapped_before += times_mapped(dir, kFirst + i);
  BOOST_TEST(mapped_before == 8);

  ReceiverProcess again(dir, {"--workers", "1", "--claim-batch", "8"});
  BOOST_TEST(wait_until([&] { return events_with_status(dir, "done") == kEvents; }, 30));
  again.kill_now(SIGTERM);
  for (int i = 0; i < kEvents; ++i) {
    BOOST_TEST(times_mapped(dir, kFirst + i) == 1, "recording " << kFirst + i);
    BOOST_TEST(times_processed(dir, kFirst + i) == 1, "recording " << kFirst + i);
  }
}

BOOST_AUTO_TEST_SUITE_END()
