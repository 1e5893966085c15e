// The sidecar's HTTP/1.1 server over real loopback sockets. Requests are written byte by byte
// where the protocol matters (pipelining, chunked bodies, 100-continue, malformed heads), and with
// cpp-httplib's client where an ordinary client is the point.
#define BOOST_TEST_MODULE fb_server
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "server/http_server.h"
#include "support/http.h"
#include "support/wait.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

// A raw client connection with a receive timeout.
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  void send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server closed: what it answered is still readable
      off += static_cast<size_t>(n);
    }
  }
  void shut_write() { ::shutdown(fd_, SHUT_WR); }
  // Reads until `until` appears in what was read (or the peer closes / timeout_ms passes).
  std::string read_until(const std::string& until, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (buf_.find(until) == std::string::npos) {
      if (!fill(deadline)) break;
    }
    size_t at = buf_.find(until);
    size_t n = at == std::string::npos ? buf_.size() : at + until.size();
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }
  // One whole response (head and Content-Length body).
  std::string response(int timeout_ms = 5000) {
    std::string head = read_until("\r\n\r\n", timeout_ms);
    size_t cl = head.find("Content-Length: ");
    if (cl == std::string::npos) return head;
    size_t len = std::stoul(head.substr(cl + 16));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (buf_.size() < len && fill(deadline)) {
    }
    std::string body = buf_.substr(0, std::min(len, buf_.size()));
    buf_.erase(0, body.size());
    return head + body;
  }
  // True when the server closed the connection within timeout_ms (EOF or reset).
  bool closed_within(int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char c[4096];
      ssize_t n = ::recv(fd_, c, sizeof c, 0);
      if (n <= 0) return true;
      buf_.append(c, static_cast<size_t>(n));
    }
  }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char c[65536];
    ssize_t n = ::recv(fd_, c, sizeof c, 0);
    if (n <= 0) return false;
    buf_.append(c, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// This process's resident memory (the server runs in it), in bytes.
size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// A server with an echo route, an async route answered from another thread, and a guard.
struct Served {
  explicit Served(HttpServerOptions o = {}) : server(prepare(o)) {
    server.route("POST", "/echo", [](const ServerRequest& req, ServerResponse& res) {
      std::string out = std::string(req.method) + " " + std::string(req.path) + " q=" + req.param("q") +
                        " x=" + std::string(req.header("x-test")) + " body=" + std::string(req.body);
      res.set_content(out, "text/plain");
      res.set_header("X-Echo", "1");
    });
    server.route("GET", "/throws", [](const ServerRequest&, ServerResponse&) { throw std::runtime_error("secret"); });
    server.route("GET", "/private/data", [](const ServerRequest&, ServerResponse& res) { res.set_content("data", "text/plain"); });
    server.guard("/private/", [](const ServerRequest& req, ServerResponse& res) {
      if (req.header("Authorization") == "Bearer ok") return true;
      res.status = 401;
      res.set_content("no", "text/plain");
      return false;
    });
    server.route_async(
        "POST", "/async/",
        [this](const ServerRequest& req, Responder respond) {
          if (req.path == "/async/inline") {
            ServerResponse r;
            r.set_content("inline " + std::string(req.body), "text/plain");
            respond(std::move(r));
            return;
          }
          if (req.path == "/async/forget") return;  // dropped unanswered: the server answers 500
          // Answered later from another thread, which reads the request's views first.
          async_started.fetch_add(1);
          std::string body(req.body);
          std::string path(req.path);
          auto shared = std::make_shared<Responder>(std::move(respond));
          int delay_ms = async_delay_ms.load();  // read now: the thread may outlive this Served
          std::thread([shared, body, path, delay_ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
            ServerResponse r;
            r.set_content(path + ":" + body, "text/plain");
            (*shared)(std::move(r));
          }).detach();
        },
        64, [](int64_t n) {
          ServerResponse r;
          r.status = 413;
          r.set_content("too large: " + std::to_string(n), "text/plain");
          return r;
        });
    BOOST_REQUIRE(server.start().ok());
  }
  static HttpServerOptions prepare(HttpServerOptions o) {
    o.port = 0;
    o.threads = 4;
    o.io_threads = 2;
    return o;
  }
  int port() { return server.port(); }
  std::atomic<int> async_delay_ms{5};
  std::atomic<int> async_started{0};  // requests the delayed /async/ handler has taken
  HttpServer server;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(http_server)

BOOST_AUTO_TEST_CASE(routes_headers_query_and_keep_alive) {
  Served s;
  Raw c(s.port());
  c.send("POST /echo?q=a%20b+c&z=1 HTTP/1.1\r\nHost: x\r\nX-TEST:  v1 \r\nContent-Length: 5\r\n\r\nhello");
  std::string r = c.response();
  BOOST_TEST(status_of(r) == 200);
  BOOST_TEST(body_of(r) == "POST /echo q=a b c x=v1 body=hello");
  BOOST_TEST(r.find("X-Echo: 1\r\n") != std::string::npos);
  BOOST_TEST(r.find("Connection: close") == std::string::npos);
  // The same connection serves the next request.
  c.send("POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=ok");
  c.send("GET /nowhere HTTP/1.1\r\n\r\n");
  BOOST_TEST(status_of(c.response()) == 404);
  // HTTP/1.0 without keep-alive: answered, then closed.
  Raw old(s.port());
  old.send("POST /echo HTTP/1.0\r\nContent-Length: 1\r\n\r\nz");
  std::string r10 = old.response();
  BOOST_TEST(status_of(r10) == 200);
  BOOST_TEST(r10.find("Connection: close") != std::string::npos);
  BOOST_TEST(old.closed_within(3000));
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  Served s;
  s.async_delay_ms = 30;  // the first answer comes late: the second must still come after it
  Raw c(s.port());
  c.send(
      "POST /async/a HTTP/1.1\r\nContent-Length: 3\r\n\r\none"
      "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo"
      "POST /async/inline HTTP/1.1\r\nContent-Length: 5\r\n\r\nthree");
  BOOST_TEST(body_of(c.response()) == "/async/a:one");
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=two");
  BOOST_TEST(body_of(c.response()) == "inline three");
}

BOOST_AUTO_TEST_CASE(chunked_body_and_expect_continue) {
  Served s;
  Raw c(s.port());
  c.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the body arrives in two parts
  c.send("E\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: t\r\n\r\n");
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=Wikipedia in\r\n\r\nchunks.");
  // Expect: 100-continue: the interim answer comes before the body is sent.
  c.send("POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  BOOST_TEST(c.read_until("\r\n\r\n") == "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("body");
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=body");
  // An ordinary client sending a chunked body.
  httplib::Client cli("127.0.0.1", s.port());
  std::string big(200000, 'q');
  auto res = cli.Post("/echo", chunked_body(big, 7000), "text/plain");
  BOOST_REQUIRE(res);
  BOOST_TEST(res->status == 200);
  BOOST_TEST(res->body == "POST /echo q= x= body=" + big);
}

BOOST_AUTO_TEST_CASE(malformed_requests_get_their_status_and_a_close) {
  Served s;
  struct Case {
    std::string request;
    int status;
  };
  std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST /echo HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n", 417},
      {"POST /echo HTTP/2.0\r\n\r\n", 505},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST /echo HTTP/1.1\r\nX: " + std::string(70000, 'a') + "\r\n\r\n", 431},
  };
  for (const Case& k : cases) {
    Raw c(s.port());
    c.send(k.request);
    std::string r = c.response();
    BOOST_TEST(status_of(r) == k.status, k.request.substr(0, 60));
    BOOST_TEST(r.find("Connection: close") != std::string::npos);
    BOOST_TEST(c.closed_within(3000));
  }
  // The server still serves.
  Raw ok(s.port());
  ok.send("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  BOOST_TEST(status_of(ok.response()) == 200);
}

BOOST_AUTO_TEST_CASE(oversized_bodies_are_refused_and_the_client_gets_the_answer) {
  HttpServerOptions o;
  o.payload_max_bytes = 1000;
  Served s(o);
  // Announced: refused before the body is read, while the client is still sending it.
  Raw c(s.port());
  c.send("POST /async/x HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n");
  c.send(std::string(1 << 20, 'x'));
  std::string r = c.response();
  BOOST_TEST(status_of(r) == 413);
  BOOST_TEST(body_of(r) == "too large: 5000000");  // the route's own answer
  // A chunked body that grows past the limit.
  Raw k(s.port());
  k.send("POST /async/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'a') + "\r\n1\r\nb\r\n");
  BOOST_TEST(status_of(k.response()) == 413);
  // The host routes' limit, through an ordinary client.
  httplib::Client cli("127.0.0.1", s.port());
  auto res = cli.Post("/echo", std::string(5000, 'y'), "text/plain");
  BOOST_REQUIRE(res);
  BOOST_TEST(res->status == 413);
}

BOOST_AUTO_TEST_CASE(guard_exception_and_unanswered_async_handler) {
  Served s;
  httplib::Client cli("127.0.0.1", s.port());
  auto denied = cli.Get("/private/data");
  BOOST_REQUIRE(denied);
  BOOST_TEST(denied->status == 401);
  auto allowed = cli.Get("/private/data", httplib::Headers{{"Authorization", "Bearer ok"}});
  BOOST_REQUIRE(allowed);
  BOOST_TEST(allowed->body == "data");
  auto thrown = cli.Get("/throws");
  BOOST_REQUIRE(thrown);
  BOOST_TEST(thrown->status == 500);
  BOOST_TEST(thrown->body.find("secret") == std::string::npos);
  auto forgot = cli.Post("/async/forget", "x", "text/plain");
  BOOST_REQUIRE(forgot);
  BOOST_TEST(forgot->status == 500);
}

BOOST_AUTO_TEST_CASE(many_connections_get_their_own_answers) {
  Served s;
  s.async_delay_ms = 1;
  constexpr int kClients = 40, kEach = 25;
  std::atomic<int> right{0}, wrong{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kClients; ++i) {
    ts.emplace_back([&, i] {
      httplib::Client cli("127.0.0.1", s.port());
      cli.set_keep_alive(true);
      for (int j = 0; j < kEach; ++j) {
        std::string body = std::to_string(i) + "-" + std::to_string(j) + std::string(static_cast<size_t>(j) * 2, '.');
        bool async = (i + j) % 2 == 0;
        auto res = async ? cli.Post("/async/c", body.substr(0, 60), "text/plain") : cli.Post("/echo", body, "text/plain");
        std::string want = async ? "/async/c:" + body.substr(0, 60) : "POST /echo q= x= body=" + body;
        (res && res->status == 200 && res->body == want ? right : wrong)++;
      }
    });
  }
  for (auto& t : ts) t.join();
  BOOST_TEST(right.load() == kClients * kEach);
  BOOST_TEST(wrong.load() == 0);
}

BOOST_AUTO_TEST_CASE(idle_and_slow_connections_are_closed) {
  HttpServerOptions o;
  o.keep_alive_timeout_s = 1;
  o.read_timeout_s = 1;
  Served s(o);
  Raw idle(s.port());
  idle.send("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  BOOST_TEST(status_of(idle.response()) == 200);
  BOOST_TEST(idle.closed_within(4000));
  Raw slow(s.port());
  slow.send("POST /echo HTTP/1.1\r\nContent-Le");  // and nothing more
  BOOST_TEST(slow.closed_within(4000));
}

BOOST_AUTO_TEST_CASE(a_client_that_shuts_down_its_side_gets_its_answer_and_the_close) {
  HttpServerOptions o;
  o.keep_alive_timeout_s = 30;  // the close must come from the client's FIN, not from a timeout
  Served s(o);
  Raw c(s.port());
  c.send("POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  c.shut_write();
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=abc");
  BOOST_TEST(c.closed_within(3000));
}

BOOST_AUTO_TEST_CASE(stop_with_an_answer_in_flight) {
  HttpServerOptions o;
  o.write_timeout_s = 1;
  auto s = std::make_unique<Served>(o);
  s->async_delay_ms = 300;
  int port = s->port();
  auto reply = std::async(std::launch::async, [port] {
    httplib::Client cli("127.0.0.1", port);
    auto res = cli.Post("/async/slow", "x", "text/plain");
    return res ? res->status : -1;
  });
  // stop() once the request is in the handler (a fixed wait before stop() let a client that
  // connected late be closed as idle on a loaded machine).
  BOOST_REQUIRE(fb::test::eventually([&] { return s->async_started.load() == 1; }));
  s->server.stop();  // waits for the answer in flight, then closes
  BOOST_TEST(reply.get() == 200);
  BOOST_TEST(!s->server.running());
  // An answer that comes after stop() (handler slower than write_timeout) is dropped safely.
  HttpServerOptions quick;
  quick.write_timeout_s = 1;
  Served late(quick);
  late.async_delay_ms = 3000;  // 2 s past stop()'s 1 s wait: room for a stop() that starts late
  int lport = late.port();
  auto lreply = std::async(std::launch::async, [lport] {
    httplib::Client cli("127.0.0.1", lport);
    cli.set_read_timeout(5, 0);
    auto res = cli.Post("/async/late", "x", "text/plain");
    return res ? res->status : -1;
  });
  BOOST_REQUIRE(fb::test::eventually([&] { return late.async_started.load() == 1; }));
  late.server.stop();
  BOOST_TEST(lreply.get() == -1);  // closed unanswered
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));  // the late answer arrives: no crash
}

BOOST_AUTO_TEST_CASE(bind_errors_and_restart) {
  HttpServerOptions o;
  HttpServer a(o);
  BOOST_REQUIRE(a.start().ok());
  BOOST_TEST(a.port() > 0);
  BOOST_TEST((a.start().code() == Code::kFailedPrecondition));
  HttpServerOptions taken;
  taken.port = a.port();
  HttpServer b(taken);
  Status st = b.start();
  BOOST_TEST((st.code() == Code::kUnavailable));
  BOOST_TEST(st.message().find(std::to_string(a.port())) != std::string::npos);
  HttpServerOptions bad;
  bad.host = "203.0.113.7";  // not an address of this machine
  HttpServer c(bad);
  BOOST_TEST((c.start().code() == Code::kUnavailable));
  a.stop();
  a.stop();
  BOOST_TEST(!a.running());
  BOOST_TEST(a.start().ok());  // binds again
  a.stop();
}

BOOST_AUTO_TEST_CASE(an_announced_body_takes_memory_only_as_it_arrives) {
  // A client that announces a large body and sends one byte of it must not make the server set
  // aside the whole announced length: a few hundred bytes per connection would otherwise pin
  // megabytes (the webhook route accepts 16 MB bodies).
  HttpServerOptions o;
  o.payload_max_bytes = 8 << 20;
  Served s(o);
  size_t before = resident_bytes();
  std::vector<std::unique_ptr<Raw>> conns;
  for (int i = 0; i < 32; ++i) {
    conns.push_back(std::make_unique<Raw>(s.port()));
    conns.back()->send("POST /echo HTTP/1.1\r\nContent-Length: 8000000\r\n\r\nx");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (auto& c : conns) c->send("y");  // a second read, once the head is known
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t grown = resident_bytes() - before;
  BOOST_TEST(grown < (32u << 20), "resident memory grew by " << grown);
  // A body that does arrive, in pieces, is still read whole.
  Raw c(s.port());
  std::string body(3 << 20, 'b');
  c.send("POST /echo HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  for (size_t off = 0; off < body.size(); off += 100000) c.send(body.substr(off, 100000));
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=" + body);
}

BOOST_AUTO_TEST_CASE(chunk_framing_does_not_accumulate) {
  // Chunk extensions make the encoded body ~1000 times its decoded size: the decoded part must
  // not stay in the connection's buffer until the request ends.
  Served s;
  std::string chunk = "1;" + std::string(1000, 'e') + "\r\nx\r\n";
  std::string piece;
  for (int i = 0; i < 1000; ++i) piece += chunk;  // ~1 MB encoded, 1000 bytes decoded
  Raw c(s.port());
  size_t before = resident_bytes();
  c.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 48; ++i) c.send(piece);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t grown = resident_bytes() - before;
  BOOST_TEST(grown < (16u << 20), "resident memory grew by " << grown);
  c.send("0\r\n\r\n");
  BOOST_TEST(body_of(c.response()) == "POST /echo q= x= body=" + std::string(48000, 'x'));
  // Trailer fields are bounded like a head: an endless trailer is refused.
  Raw t(s.port());
  t.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
  std::string line = "X-Trailer: " + std::string(50, 't') + "\r\n";
  std::string lines;
  for (int i = 0; i < 2000; ++i) lines += line;  // 120 KB of trailer fields, never ended
  t.send(lines);
  std::string r = t.response(3000);
  BOOST_TEST(status_of(r) == 431, r);
  BOOST_TEST(t.closed_within(3000));
}

BOOST_AUTO_TEST_CASE(framing_that_another_parser_could_read_differently_is_refused) {
  // Each of these could make a proxy in front and this server disagree on where a request ends.
  Served s;
  std::vector<std::string> cases = {
      // A bare LF inside a field value: a lenient parser sees a second field there.
      "POST /echo HTTP/1.1\r\nX-Test: a\nContent-Length: 11\r\nContent-Length: 0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nX-Test: a\rb\r\nContent-Length: 0\r\n\r\n",
      std::string("POST /echo HTTP/1.1\r\nX-Test: a") + '\0' + "b\r\nContent-Length: 0\r\n\r\n",
      "POST /echo\x01 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      // Present but empty: not the same as absent.
      "POST /echo HTTP/1.1\r\nContent-Length:\r\nContent-Length: 5\r\n\r\nhello",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      // Two Transfer-Encoding fields are one list ("gzip, chunked"), not the last one alone.
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  };
  for (const std::string& k : cases) {
    Raw c(s.port());
    c.send(k);
    std::string r = c.response(2000);
    int st = status_of(r);
    BOOST_TEST((st == 400 || st == 501), k << " -> " << r);
    BOOST_TEST(r.find("Connection: close") != std::string::npos);
    BOOST_TEST(c.closed_within(3000));
  }
}

BOOST_AUTO_TEST_CASE(an_answer_to_head_has_no_body) {
  // The client reads no body after an answer to HEAD: one sent would be taken as the next answer.
  Served s;
  Raw c(s.port());
  c.send("HEAD /nowhere HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
  std::string head = c.read_until("\r\n\r\n");
  BOOST_TEST(status_of(head) == 404);
  std::string next = c.response();
  BOOST_TEST(status_of(next) == 200, next);
  BOOST_TEST(body_of(next) == "POST /echo q= x= body=ok");
}

BOOST_AUTO_TEST_CASE(out_of_descriptors_the_loops_wait_instead_of_spinning) {
  // accept() failing with EMFILE leaves the connection queued and the listening socket readable:
  // retried at once, every loop would spin at full speed (and log each failure) until a
  // descriptor frees up.
  Served s;
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(::socket(AF_INET, SOCK_STREAM, 0));
  rlimit old{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  size_t open = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++open;
  }
  rlimit low = old;
  low.rlim_cur = open + 2;  // the server can accept two more
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(s.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int fd : clients) BOOST_TEST(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto cpu_ms = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000;
  };
  long cpu_before = cpu_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long spent = cpu_ms() - cpu_before;
  ::setrlimit(RLIMIT_NOFILE, &old);
  BOOST_TEST(spent < 150, "CPU spent in 500 ms while out of descriptors: " << spent << " ms");
  // Once descriptors are available again, the queued connections are served.
  std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
  BOOST_TEST(::send(clients.back(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  pollfd p{clients.back(), POLLIN, 0};
  BOOST_TEST(::poll(&p, 1, 3000) == 1);
  for (int fd : clients) ::close(fd);
}

BOOST_AUTO_TEST_CASE(requests_split_at_every_byte_and_pipelined_with_a_partial_one) {
  Served s;
  std::string req = "POST /echo?q=1 HTTP/1.1\r\nX-Test: t\r\nContent-Length: 5\r\n\r\nhello";
  std::string creq = "POST /async/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n";
  for (const std::string& r : {req, creq}) {
    Raw c(s.port());
    for (char ch : r) {
      c.send(std::string(1, ch));
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    std::string got = c.response(3000);
    BOOST_TEST(status_of(got) == 200, got);
  }
  Raw p(s.port());
  p.send(req + req + creq + req.substr(0, 30));
  BOOST_TEST(status_of(p.response()) == 200);
  BOOST_TEST(status_of(p.response()) == 200);
  BOOST_TEST(body_of(p.response()) == "/async/k:abcde");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  p.send(req.substr(30));
  BOOST_TEST(status_of(p.response(1500)) == 200);
}

BOOST_AUTO_TEST_SUITE_END()
