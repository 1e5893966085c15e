// URL parsing and the pooled httplib transport against a real loopback server.
#include <httplib.h>

#include <boost/test/unit_test.hpp>
#include <thread>

#include "http/http_client.h"

using namespace fb::detail;

BOOST_AUTO_TEST_SUITE(http)

BOOST_AUTO_TEST_CASE(parse_url_cases) {
  auto u = parse_url("https://api.fathom.ai/external/v1?x=1#frag");
  BOOST_REQUIRE(u.ok());
  BOOST_TEST(u->scheme == "https");
  BOOST_TEST(u->host == "api.fathom.ai");
  BOOST_TEST(u->port == 443);
  BOOST_TEST(u->path_and_query == "/external/v1?x=1");
  auto p = parse_url("http://127.0.0.1:8080");
  BOOST_REQUIRE(p.ok());
  BOOST_TEST(p->port == 8080);
  BOOST_TEST(p->path_and_query == "/");
  BOOST_TEST(parse_url("http://[::1]:9000/a")->host == "::1");
  BOOST_TEST(parse_url("ftp://x/").code() == fb::Code::kInvalidArgument);
  BOOST_TEST(parse_url("http://u:p@x/").code() == fb::Code::kInvalidArgument);
  BOOST_TEST(parse_url("http://x:99999/").code() == fb::Code::kInvalidArgument);
  BOOST_TEST(parse_url("http://x:ab/").code() == fb::Code::kInvalidArgument);
  BOOST_TEST(parse_url("no-scheme").code() == fb::Code::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(retry_after_in_every_form_rfc_9110_allows) {
  const int64_t now = 784111777000;  // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date)
  BOOST_TEST(parse_retry_after_ms("120", now) == 120000);
  BOOST_TEST(parse_retry_after_ms(" 0 ", now) == 0);
  // The three HTTP-date forms, 60 s after now.
  BOOST_TEST(parse_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", now) == 60000);
  BOOST_TEST(parse_retry_after_ms("Sunday, 06-Nov-94 08:50:37 GMT", now) == 60000);
  BOOST_TEST(parse_retry_after_ms("Sun Nov  6 08:50:37 1994", now) == 60000);
  BOOST_TEST(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:00 GMT", now) == 0);  // past: now
  for (const char* bad : {"", "  ", "-5", "1.5", "soon", "Sun, 06 Nov 1994 08:50:37 PST", "9999999999",
                          "Sun, 06 Nov 1994 08:50:37 GMT junk"}) {
    BOOST_TEST(parse_retry_after_ms(bad, now) == -1, bad);
  }
}

BOOST_AUTO_TEST_CASE(transport_round_trip_and_connection_errors) {
  httplib::Server svr;
  svr.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Seen-Type", req.get_header_value("Content-Type"));
    res.set_header("X-Seen-UA", req.get_header_value("User-Agent"));
    res.status = 201;
    res.set_content(req.body, "text/plain");
  });
  svr.Get("/fail", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content("{\"error\":\"busy\"}", "application/json");
  });
  int port = svr.bind_to_any_port("127.0.0.1");
  std::thread t([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::yield();

  HttplibTransport http;
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  for (int i = 0; i < 3; ++i) {  // the pooled connection is reused across calls
    auto r = http.send({"POST", base + "/echo", {}, "a=1", "application/x-www-form-urlencoded"});
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    BOOST_TEST(r->status == 201);
    BOOST_TEST(r->body == "a=1");
    BOOST_TEST(r->header("x-seen-type") == "application/x-www-form-urlencoded");
    BOOST_TEST(r->header("X-SEEN-UA").find("fathom-bridge/") == 0);
  }
  auto f = http.send({"GET", base + "/fail", {}, "", ""});
  BOOST_REQUIRE(f.ok());  // an HTTP error status is a response, not a transport failure
  BOOST_TEST(f->status == 503);
  svr.stop();
  t.join();
  auto down = http.send({"GET", base + "/fail", {}, "", ""});
  BOOST_TEST((down.code() == fb::Code::kUnavailable || down.code() == fb::Code::kTimeout));
  BOOST_TEST(http.send({"BREW", base, {}, "", ""}).code() == fb::Code::kInvalidArgument);
}

BOOST_AUTO_TEST_SUITE_END()
