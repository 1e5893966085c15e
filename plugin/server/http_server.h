// http_server.h: the sidecar's HTTP/1.1 server, on which route groups are mounted.
//
//   HttpServer server(HttpServer::options_from(config.server, config.webhooks));
//   mount_webhook_routes(server, receiver);      // webhook_routes.h: an asynchronous route
//   server.route("GET", "/healthz", [](const ServerRequest&, ServerResponse& res) { res.set_content("ok", "text/plain"); });
//   FB_TRY(server.start());                      // binds, then serves on its own threads
//   ... server.port() ...
//   server.stop();
//
// Why not cpp-httplib's server: it serves each keep-alive connection on a thread of its own, polls
// before every 4 KB read and parses headers into a map of strings. A webhook delivery then costs a
// thread wake-up per request and a third of its CPU in the server. Here a few event-loop threads
// (epoll, edge-triggered) read whole requests into one buffer per connection, hand the parsed
// request to its route as views into that buffer (no copy of a body), and write each answer with
// one send. cpp-httplib stays our HTTP client.
//
// Two kinds of route:
// - route(): a blocking handler, run on a pool of `threads` threads (the host routes: they call
//   into the bridge, which may wait on the database or on Fathom).
// - route_async(): a handler run on the event-loop thread, which must not block; it answers later
//   through its Responder, from any thread (the webhook route hands the delivery to the inbox's
//   group commit, whose writer thread answers once the batch is durable).
//
// Protocol: HTTP/1.1 and 1.0, keep-alive, pipelining (answered in order), Content-Length and
// chunked request bodies, `Expect: 100-continue`. Refused with a status and the connection closed:
// a malformed request line or header (400), a body with both Content-Length and Transfer-Encoding
// (400), a transfer coding other than chunked (501), a head over 64 KB (431), a body over the
// route's limit (413, before it is read), an unknown Expect (417). Idle keep-alive connections are
// closed after keep_alive_timeout_s; a request that does not arrive within read_timeout_s and an
// answer the client does not take within write_timeout_s close theirs.
//
// Threading: mount routes before start(); start()/stop()/port()/running() are thread-safe. A
// Responder may be called from any thread, exactly once; the request it answers (its views) stays
// valid until then.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

// A parsed request. Every view points into the connection's buffer and is valid until the handler
// returns (route) or its Responder is called (route_async).
struct ServerRequest {
  std::string_view method;
  std::string_view target;  // as sent: path and query
  std::string_view path;    // target up to '?', not percent-decoded
  std::string_view query;   // after '?', or empty
  std::vector<std::pair<std::string_view, std::string_view>> headers;  // in order; values trimmed
  std::string_view body;    // decoded (chunked bodies are joined)
  std::string remote_ip;

  // The first header with this name (ASCII case-insensitive), or "" when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  // Query parameters, percent- and '+'-decoded; "" when absent.
  bool has_param(std::string_view key) const;
  std::string param(std::string_view key) const;
};

struct ServerResponse {
  int status = 200;
  std::string body;
  std::string content_type;  // sent when set
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this answer

  void set_content(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

// Answers one request from any thread, once. Moving it moves the duty; destroying one that was
// never called answers 500 (so a handler that forgets cannot hang the connection).
class Responder {
 public:
  struct Target;
  Responder() = default;
  explicit Responder(std::shared_ptr<Target> target) : target_(std::move(target)) {}
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();
  void operator()(ServerResponse response);

 private:
  std::shared_ptr<Target> target_;
};

using Handler = std::function<void(const ServerRequest&, ServerResponse&)>;
using AsyncHandler = std::function<void(const ServerRequest&, Responder)>;
// Checks a request before its (blocking) handler; returns false after filling the answer itself.
using Guard = std::function<bool(const ServerRequest&, ServerResponse&)>;
// The answer to a body over the route's limit, given its announced or received length.
using TooLargeHandler = std::function<ServerResponse(int64_t length)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless configured otherwise
  int port = 0;                    // 0: any free port (see port())
  int threads = 16;                // blocking handlers run at once (route())
  int io_threads = 0;              // event loops; 0: one per core, at most 4
  size_t payload_max_bytes = 1u << 20;  // body limit of route() routes
  size_t max_connections = 10000;  // more are accepted and closed at once
  int keep_alive_timeout_s = 5;
  int read_timeout_s = 15;
  int write_timeout_s = 15;
};

class HttpServer {
 public:
  // payload_max_bytes is the host routes' limit; webhook bodies have their own (the receiver's).
  static HttpServerOptions options_from(const ServerConfig& server, const WebhookConfig& webhooks);

  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact path. A second route for the same method and path replaces the first.
  void route(std::string method, std::string path, Handler handler);
  // Every path that starts with prefix (longest prefix wins), answered on the event loop.
  // max_body_bytes < 0: payload_max_bytes.
  void route_async(std::string method, std::string prefix, AsyncHandler handler, int64_t max_body_bytes = -1,
                   TooLargeHandler too_large = nullptr);
  // Runs before every blocking handler whose path starts with prefix.
  void guard(std::string prefix, Guard guard);

  const HttpServerOptions& options() const { return options_; }

  struct RouteInfo {
    std::string method;
    std::string path;  // the exact path, or the prefix of a route_async route
    bool prefix = false;
  };
  // Every mounted route, sorted by path then method (for documentation checks: openapi.h).
  std::vector<RouteInfo> routes() const;

  // Binds host:port now (kUnavailable naming the address when it cannot), so that port() is known
  // before routes that need it are built. Optional: start() binds when bind() was not called.
  // Calling it twice fails with kFailedPrecondition.
  Status bind();
  // Binds (unless bind() did) and serves on background threads. Twice: kFailedPrecondition.
  Status start();
  // Stops accepting, waits (up to write_timeout_s) for the answers of requests in flight, closes
  // every connection and joins the threads. Idempotent.
  void stop();
  // The bound port (after bind() or start()), or 0.
  int port() const;
  bool running() const;

  struct Impl;

 private:
  HttpServerOptions options_;
  std::unique_ptr<Impl> impl_;
  mutable std::mutex mu_;
  int port_ = 0;          // guarded by mu_
  bool bound_ = false;    // guarded by mu_
  bool started_ = false;  // guarded by mu_
};

}  // namespace fb::detail
