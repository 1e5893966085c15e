// The built-in HTTP server's webhook route, over real loopback HTTP.
#include <httplib.h>

#include <boost/test/unit_test.hpp>

#include "fixture.h"
#include "server/http_server.h"
#include "server/webhook_routes.h"
#include "support/http.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

struct Served {
  explicit Served(Config cfg = Config()) : stack(clock, cfg) {
    path = stack.add_endpoint(11, kSecretA);
    HttpServerOptions o = HttpServer::options_from(cfg.server, cfg.webhooks);
    o.port = 0;
    o.threads = 8;
    server = std::make_unique<HttpServer>(o);
    mount_webhook_routes(*server, *stack.receiver);
    BOOST_REQUIRE(server->start().ok());
  }
  std::string url(const std::string& p) const { return "http://127.0.0.1:" + std::to_string(server->port()) + p; }
  HttpReply post(const HeaderList& h, const std::string& body, const std::string& p = "") {
    HttpCall call;
    call.method = "POST";
    call.url = url(p.empty() ? path : p);
    call.body = body;
    for (auto& kv : h) {
      if (kv.first != "Content-Type") call.headers.emplace(kv.first, kv.second);
    }
    call.content_type = "application/json";
    return http_request(call);
  }

  SystemClock clock;
  WebhookStack stack;
  std::string path;
  std::unique_ptr<HttpServer> server;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(http_route)

BOOST_AUTO_TEST_CASE(valid_delivery_over_http_is_stored) {
  Served s;
  BOOST_TEST(s.server->running());
  std::string body = meeting_body(31337);
  auto r = s.post(signed_headers(kSecretA, "msg_http_1", s.clock.now_s(), body), body);
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.header("Webhook-Result") == "accepted");
  BOOST_TEST(r.body.empty());
  BOOST_TEST(s.stack.inbox_rows() == 1);
  auto events = s.stack.inbox->list({});
  BOOST_REQUIRE(events.ok());
  auto e = s.stack.inbox->get(events->at(0).id, true);
  BOOST_TEST(e->body == body);
  BOOST_TEST(e->recording_id == 31337);
  // svix-* header names only, as some senders do.
  auto h = signed_headers(kSecretA, "msg_http_2", s.clock.now_s(), body);
  HeaderList svix = {{"svix-id", h[0].second}, {"svix-timestamp", h[1].second}, {"svix-signature", h[2].second}};
  BOOST_TEST(s.post(svix, body).status == 200);
  BOOST_TEST(s.stack.inbox_rows() == 2);
}

BOOST_AUTO_TEST_CASE(rejections_over_http_store_nothing) {
  Config cfg;
  cfg.webhooks.max_body_bytes = 64 * 1024;
  Served s(cfg);
  std::string body = meeting_body(1);
  auto good = signed_headers(kSecretA, "msg_h", s.clock.now_s(), body);
  auto r = s.post(signed_headers(kSecretB, "msg_h", s.clock.now_s(), body), body);
  BOOST_TEST(r.status == 401);
  BOOST_TEST(r.body == "bad signature");
  r = s.post(good, body, "/webhooks/fathom/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  BOOST_TEST(r.status == 404);
  BOOST_TEST(r.body == "unknown endpoint");
  r = s.post({good[0], good[1]}, body);
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.body == "missing header webhook-signature");
  std::string junk = "{\"recording_id\": oops}";
  r = s.post(signed_headers(kSecretA, "msg_j", s.clock.now_s(), junk), junk);
  BOOST_TEST(r.status == 200);  // verified: kept as a dead letter (receiver_test has the details)
  BOOST_TEST(r.header("Webhook-Result") == "accepted as unprocessable");
  // Oversized: refused from the Content-Length, before the body is read.
  std::string big = meeting_body(2, std::string(100 * 1024, 'x'));
  r = s.post(signed_headers(kSecretA, "msg_big", s.clock.now_s(), big), big);
  BOOST_TEST(r.status == 413);
  BOOST_TEST(r.body == "payload too large");
  BOOST_TEST(s.stack.receiver->stats().rejected[static_cast<size_t>(Rejection::kTooLarge)] == 1);
  BOOST_TEST(s.stack.inbox_rows() == 1);  // the unprocessable one only
  // The server still serves.
  BOOST_TEST(s.post(good, body).status == 200);
  BOOST_TEST(s.stack.inbox_rows() == 2);
}

BOOST_AUTO_TEST_CASE(oversized_chunked_body_is_refused_while_reading) {
  Config cfg;
  cfg.webhooks.max_body_bytes = 16 * 1024;
  Served s(cfg);
  std::string big = meeting_body(2, std::string(64 * 1024, 'x'));
  auto h = signed_headers(kSecretA, "msg_chunked", s.clock.now_s(), big);
  httplib::Client cli("127.0.0.1", s.server->port());
  httplib::Headers hh;
  for (auto& kv : h) {
    if (kv.first != "Content-Type") hh.emplace(kv.first, kv.second);
  }
  auto res = cli.Post(s.path, hh, chunked_body(big, 4096), "application/json");
  BOOST_REQUIRE(res);
  BOOST_TEST(res->status == 413);
  BOOST_TEST(s.stack.inbox_rows() == 0);
}

BOOST_AUTO_TEST_CASE(keep_alive_connection_serves_many_deliveries) {
  Served s;
  httplib::Client cli("127.0.0.1", s.server->port());
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  for (int i = 0; i < 30; ++i) {  // more than cpp-httplib's default of 5 requests per connection
    std::string body = meeting_body(i);
    httplib::Headers hh;
    for (auto& kv : signed_headers(kSecretA, "ka_" + std::to_string(i), s.clock.now_s(), body)) {
      if (kv.first != "Content-Type") hh.emplace(kv.first, kv.second);
    }
    auto res = cli.Post(s.path.c_str(), hh, body, "application/json");
    BOOST_REQUIRE(res);
    BOOST_TEST(res->status == 200);
    BOOST_TEST(res->get_header_value("Connection") != "close");
  }
  BOOST_TEST(s.stack.inbox_rows() == 30);
}

BOOST_AUTO_TEST_CASE(start_stop_and_bind_errors) {
  HttpServerOptions o;
  o.port = 0;
  HttpServer a(o);
  BOOST_REQUIRE(a.start().ok());
  BOOST_TEST(a.port() > 0);
  BOOST_TEST((a.start().code() == Code::kFailedPrecondition));
  HttpServerOptions taken;
  taken.port = a.port();
  HttpServer b(taken);
  auto st = b.start();
  BOOST_TEST((st.code() == Code::kUnavailable));
  BOOST_TEST(st.message().find(std::to_string(a.port())) != std::string::npos);
  a.stop();
  a.stop();  // idempotent
  BOOST_TEST(!a.running());
  // The sidecar defaults: loopback only.
  BOOST_TEST(HttpServer::options_from(Config().server, Config().webhooks).host == "127.0.0.1");
}

BOOST_AUTO_TEST_SUITE_END()
