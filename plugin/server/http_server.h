// http_server.h: the sidecar's HTTP server (cpp-httplib), on which route groups are mounted.
//
//   HttpServer server(HttpServer::options_from(config.server, config.webhooks));
//   mount_webhook_routes(server, receiver);      // webhook_routes.h
//   mount_host_routes(server, ...);              // host_routes.h (the facade's routes)
//   FB_TRY(server.start());                      // binds, then serves on its own thread
//   ... server.port() ...
//   server.stop();
//
// cpp-httplib serves each connection on one pool thread for as long as the connection is kept
// alive, so `threads` is the number of connections served at once: size it for the senders'
// concurrent keep-alive connections (Svix opens several), not for the CPU count.
//
// Threading: mount routes (through raw()) before start(); start()/stop()/port() are thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"

namespace httplib {
class Server;
}

namespace fb::detail {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless configured otherwise
  int port = 0;                    // 0: any free port (see port())
  int threads = 64;                // connections served at once
  size_t payload_max_bytes = 16u << 20;
  size_t keep_alive_max_requests = 100000;
  int keep_alive_timeout_s = 5;
  int read_timeout_s = 15;
  int write_timeout_s = 15;
};

class HttpServer {
 public:
  // payload_max_bytes covers webhook bodies (max_body_bytes) plus headroom for host routes.
  static HttpServerOptions options_from(const ServerConfig& server, const WebhookConfig& webhooks);

  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The cpp-httplib server, for mounting route groups. Internal: only plugin code uses it.
  httplib::Server& raw() { return *server_; }
  const HttpServerOptions& options() const { return options_; }

  // Binds host:port now (kUnavailable naming the address when it cannot), so that port() is known
  // before routes that need it (a public URL with the port) are built. Optional: start() binds
  // when bind() was not called. Calling it twice fails with kFailedPrecondition.
  Status bind();
  // Binds (unless bind() did) and serves on a background thread. Calling it twice fails with
  // kFailedPrecondition.
  Status start();
  // Stops accepting, finishes in-flight requests and joins the thread. Idempotent.
  void stop();
  // The bound port (after bind() or start()), or 0.
  int port() const;
  bool running() const;

 private:
  HttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  mutable std::mutex mu_;
  std::thread thread_;  // guarded by mu_
  int port_ = 0;        // guarded by mu_
  bool bound_ = false;  // guarded by mu_
  bool started_ = false;  // guarded by mu_

  Status bind_locked();
};

}  // namespace fb::detail
