#include "support/webhook_receiver.h"

#include <httplib.h>

#include <chrono>
#include <stdexcept>

namespace fb::test {

std::string ReceivedRequest::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

struct WebhookReceiver::Impl {
  httplib::Server server;
  std::thread thread;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<ReceivedRequest> received;
  int status = 204;
  int fail_count = 0;
  int fail_status = 500;
  int delay_ms = 0;
  std::function<int(const ReceivedRequest&)> responder;

  void handle(const httplib::Request& req, httplib::Response& res) {
    ReceivedRequest r;
    r.method = req.method;
    r.path = req.path;
    size_t qm = req.target.find('?');
    if (qm != std::string::npos) r.query = req.target.substr(qm + 1);
    for (const auto& [k, v] : req.headers) r.headers.emplace(k, v);
    r.body = req.body;
    r.received_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    int delay = 0;
    std::function<int(const ReceivedRequest&)> fn;
    {
      std::lock_guard<std::mutex> lock(mu);
      delay = delay_ms;
      fn = responder;
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    int answer;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (fn) {
        answer = 0;
      } else if (fail_count > 0) {
        --fail_count;
        answer = fail_status;
      } else {
        answer = status;
      }
    }
    if (fn) answer = fn(r);
    r.answered_status = answer;
    res.status = answer;
    {
      std::lock_guard<std::mutex> lock(mu);
      received.push_back(std::move(r));
    }
    cv.notify_all();
  }
};

WebhookReceiver::WebhookReceiver() : impl_(std::make_unique<Impl>()) {
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { impl_->handle(req, res); };
  impl_->server.Post(".*", handler);
  impl_->server.Put(".*", handler);
  impl_->server.Get(".*", handler);
  impl_->server.set_tcp_nodelay(true);  // head and body are two writes: no ~40 ms Nagle wait between
  impl_->server.new_task_queue = [] { return new httplib::ThreadPool(8); };
  port_ = impl_->server.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("WebhookReceiver: cannot bind a loopback port");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

WebhookReceiver::~WebhookReceiver() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::set_status(int status) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->status = status;
}

void WebhookReceiver::fail_next(int count, int status) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->fail_count = count;
  impl_->fail_status = status;
}

void WebhookReceiver::set_delay_ms(int ms) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->delay_ms = ms;
}

void WebhookReceiver::set_responder(std::function<int(const ReceivedRequest&)> responder) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->responder = std::move(responder);
}

bool WebhookReceiver::wait_for(size_t n, double timeout_s) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                            [&] { return impl_->received.size() >= n; });
}

std::vector<ReceivedRequest> WebhookReceiver::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

size_t WebhookReceiver::count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received.size();
}

void WebhookReceiver::clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->received.clear();
}

}  // namespace fb::test
