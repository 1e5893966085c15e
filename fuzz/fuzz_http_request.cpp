// The sidecar's HTTP/1.1 request parser (plugin/server/http_server.cpp): request line and
// headers, Content-Length and chunked framing, pipelining, Expect, limits. The parser lives in
// the server's event loop, so this target runs the real server on loopback (one event loop) and
// sends each input as the bytes of one connection, then half-closes it and reads every answer.
// Routes: a blocking GET/POST route that echoes what it parsed, and an asynchronous prefix route
// (as the webhook route is) with a small body limit. Properties: the server never crashes, never
// hangs a connection past the half-close, and everything it sends back is a sequence of
// well-formed HTTP/1.1 answers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "core/log.h"
#include "server/http_server.h"

using namespace fb::detail;

namespace {

std::string describe(const ServerRequest& req) {
  std::string out;
  out.append(req.method).append(" ").append(req.path).append("?").append(req.query).append("\n");
  for (const auto& [k, v] : req.headers) out.append(k).append(": ").append(v).append("\n");
  out.append(std::to_string(req.body.size())).append("\n").append(req.body);
  (void)req.param("a");
  (void)req.has_param("b");
  (void)req.header("content-type");
  return out;
}

HttpServer& server() {
  static HttpServer* s = [] {
    fb::detail::set_log_level(fb::detail::LogLevel::kOff);
    HttpServerOptions o;
    o.io_threads = 1;
    o.threads = 2;
    o.payload_max_bytes = 2048;
    o.read_timeout_s = 2;
    o.keep_alive_timeout_s = 2;
    o.write_timeout_s = 2;
    auto* srv = new HttpServer(o);
    auto echo = [](const ServerRequest& req, ServerResponse& res) { res.set_content(describe(req), "text/plain"); };
    srv->route("GET", "/x", echo);
    srv->route("POST", "/x", echo);
    srv->route_async(
        "POST", "/hooks/",
        [](const ServerRequest& req, Responder respond) {
          ServerResponse r;
          r.set_content(describe(req), "text/plain");
          respond(std::move(r));
        },
        1024);
    if (!srv->start().ok()) std::abort();
    return srv;
  }();
  return *s;
}

// Checks the bytes the server sent: answers, each "HTTP/1.1 NNN reason\r\n", headers, a blank line
// and a body of Content-Length bytes (HEAD answers have none: a short tail is allowed).
void check_answers(std::string_view out) {
  while (!out.empty()) {
    if (out.substr(0, 9) != "HTTP/1.1 " || out.size() < 12) {
      std::fprintf(stderr, "not an HTTP/1.1 answer: %.*s\n", static_cast<int>(std::min<size_t>(out.size(), 80)),
                   out.data());
      std::abort();
    }
    size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      std::fprintf(stderr, "an answer without the end of its head\n");
      std::abort();
    }
    std::string_view head = out.substr(0, end);
    int status = std::atoi(std::string(out.substr(9, 3)).c_str());
    if (status < 100 || status > 599) std::abort();
    size_t cl = head.find("\r\nContent-Length: ");
    size_t len = 0;
    if (cl != std::string_view::npos) len = std::strtoul(std::string(head.substr(cl + 18, 12)).c_str(), nullptr, 10);
    out.remove_prefix(end + 4);
    if (status == 100) continue;
    size_t next = out.find("HTTP/1.1 ");
    // The body is Content-Length bytes, or nothing (an answer to HEAD).
    if (out.size() >= len && (out.size() == len || out.substr(len, 9) == "HTTP/1.1 ")) {
      out.remove_prefix(len);
    } else if (next == 0 || out.empty()) {
      // HEAD: no body
    } else {
      std::fprintf(stderr, "an answer's body does not match its Content-Length (%zu)\n", len);
      std::abort();
    }
  }
}

// A connection to the server, robust to what the harness itself can run into. A fresh-clone CI run
// on an idle machine (~1,800 inputs a second, each its own connection) aborted in connect() after
// 52,737 inputs, without saying why. The two causes a harness can meet: a signal (libFuzzer's
// -timeout watchdog, a SIGALRM every 6 s with ./run's -timeout=10) landing in a connect() that
// waits because the server's accept queue was full, and no free local port while tens of thousands
// of earlier connections sit in TIME_WAIT. Both are retried here (an interrupted connect() goes on
// in the kernel: wait for it); any other error is named before the abort.
int connect_to_server(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int attempt = 0; attempt < 500; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) std::abort();
    int err = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
    if (err == EINTR || err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int r = 0;
      do r = poll(&p, 1, 10000); while (r < 0 && errno == EINTR);
      int so = 0;
      socklen_t len = sizeof so;
      err = r != 1 ? ETIMEDOUT : getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) != 0 ? errno : so;
    }
    if (err == 0) return fd;
    close(fd);
    // Every local port in TIME_WAIT for now: the kernel lets them be reused after a moment.
    if (err == EADDRNOTAVAIL || err == EAGAIN) {
      usleep(10'000);
      continue;
    }
    std::fprintf(stderr, "connect to the server on 127.0.0.1:%d: %s\n", port, std::strerror(err));
    std::abort();
  }
  std::fprintf(stderr, "connect to the server on 127.0.0.1:%d: no local port free for 5 s\n", port);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = connect_to_server(server().port());
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server refused and closed: fine
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    // The server must answer and close within its read timeout once the client half-closed.
    int r = poll(&p, 1, 10000);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      std::fprintf(stderr, "the server held a half-closed connection for 10 s\n");
      std::abort();
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  check_answers(out);
  return 0;
}
