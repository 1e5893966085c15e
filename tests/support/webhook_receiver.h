// webhook_receiver.h: a loopback HTTP server that records every request it receives.
//
//   fb::test::WebhookReceiver rx;                 // listens on 127.0.0.1, a free port
//   register rx.url("/hooks") as a webhook destination ...
//   rx.set_status(500);                           // answer 500 to make the sender retry
//   BOOST_TEST(rx.wait_for(3, 10.0));             // at least 3 requests within 10 s
//   auto got = rx.requests();
//
// Thread safety: every method may be called from any thread while requests arrive.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/http.h"

namespace fb::test {

struct ReceivedRequest {
  std::string method;
  std::string path;        // without the query
  std::string query;       // raw query string, "" when none
  HeaderMap headers;
  std::string body;        // raw bytes as received
  int64_t received_ms = 0; // wall clock
  int answered_status = 0;

  std::string header(const std::string& name) const;
};

class WebhookReceiver {
 public:
  WebhookReceiver();
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT" + path
  std::string url(const std::string& path = "/") const;

  // Status answered to the following requests (default 204).
  void set_status(int status);
  // The next `count` requests get `status`, then the default again.
  void fail_next(int count, int status = 500);
  // Delay before answering, to exercise sender timeouts.
  void set_delay_ms(int ms);
  // Full control: returns the status for a request (overrides the above while set).
  void set_responder(std::function<int(const ReceivedRequest&)> responder);

  // Waits until at least n requests arrived or timeout_s passed; true when they arrived.
  bool wait_for(size_t n, double timeout_s) const;
  std::vector<ReceivedRequest> requests() const;
  size_t count() const;
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace fb::test
