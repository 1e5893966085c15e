#include "server/http_server.h"

#include <httplib.h>

#include <chrono>

#include "core/log.h"

namespace fb::detail {

HttpServerOptions HttpServer::options_from(const ServerConfig& server, const WebhookConfig& webhooks) {
  HttpServerOptions o;
  o.host = server.host;
  o.port = server.port;
  o.threads = server.threads;
  o.payload_max_bytes = static_cast<size_t>(webhooks.max_body_bytes) + (1u << 20);
  return o;
}

HttpServer::HttpServer(HttpServerOptions options)
    : options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {
  int threads = options_.threads > 0 ? options_.threads : 1;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server_->set_payload_max_length(options_.payload_max_bytes);
  server_->set_keep_alive_max_count(options_.keep_alive_max_requests);
  server_->set_keep_alive_timeout(options_.keep_alive_timeout_s);
  server_->set_read_timeout(options_.read_timeout_s, 0);
  server_->set_write_timeout(options_.write_timeout_s, 0);
  server_->set_tcp_nodelay(true);
  // cpp-httplib's default also sets SO_REUSEPORT, which would let a second sidecar bind the same
  // port and silently take half the deliveries. Only SO_REUSEADDR (restart without TIME_WAIT).
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // A handler that throws answers 500 with a fixed text: an exception message could carry data.
  server_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content("internal error", "text/plain");
  });
}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::bind_locked() {
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port <= 0) return Status::Unavailable("cannot bind an HTTP port on " + options_.host);
  } else if (!server_->bind_to_port(options_.host, port)) {
    return Status::Unavailable("cannot bind " + options_.host + ":" + std::to_string(port) +
                               " (in use, or not a local address)");
  }
  port_ = port;
  bound_ = true;
  return Status::Ok();
}

Status HttpServer::bind() {
  std::lock_guard lk(mu_);
  if (bound_) return Status::FailedPrecondition("HTTP server already bound");
  return bind_locked();
}

Status HttpServer::start() {
  std::lock_guard lk(mu_);
  if (started_) return Status::FailedPrecondition("HTTP server already started");
  if (!bound_) FB_TRY(bind_locked());
  started_ = true;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the listen loop runs, so a stop() right after start()
  // would leave the thread serving forever: wait for the loop (it starts within microseconds).
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  FB_LOG(kInfo, "server") << "listening on http://" << options_.host << ":" << port_ << " with " << options_.threads
                          << " connection threads";
  return Status::Ok();
}

void HttpServer::stop() {
  std::lock_guard lk(mu_);
  if (!started_ && !bound_) return;
  if (!started_) {
    // httplib closes a bound socket only from its listen loop: run the loop for a moment.
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  server_->stop();
  if (thread_.joinable()) thread_.join();
  started_ = false;
  bound_ = false;
  port_ = 0;
}

int HttpServer::port() const {
  std::lock_guard lk(mu_);
  return port_;
}

bool HttpServer::running() const {
  std::lock_guard lk(mu_);
  return started_;  // bound, and the serving thread started: connections are accepted
}

}  // namespace fb::detail
