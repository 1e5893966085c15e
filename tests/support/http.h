// http.h: one-shot loopback HTTP calls for tests, with a plain result type.
//
// Tests use these to talk to fathom-sim or a WebhookReceiver directly, without the plugin's
// transport, so a test of the plugin never depends on the code under test to observe the wire.
// Redirects are never followed (an OAuth test reads the Location header itself). Plain http only;
// each call opens one connection with "Connection: close" and returns the bytes as sent.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace httplib {
class DataSink;
}

namespace fb::test {

// A cpp-httplib content provider that sends body in pieces of `piece` bytes with no length, so the
// client uses Transfer-Encoding: chunked:  cli.Post(path, chunked_body(body, 4096), "text/plain").
std::function<bool(size_t, httplib::DataSink&)> chunked_body(std::string body, size_t piece);

// Header names compare case-insensitively, as on the wire.
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using HeaderMap = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct HttpReply {
  int status = 0;          // 0 when no HTTP answer arrived (connection refused, timeout)
  std::string error;       // transport error text when status == 0
  HeaderMap headers;
  std::string body;

  // First value of a header, "" when absent.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const;
  // The body parsed as JSON; throws std::runtime_error naming the status and body when it is not.
  nlohmann::json json() const;
};

struct HttpCall {
  std::string method = "GET";
  std::string url;                   // absolute, e.g. "http://127.0.0.1:1234/external/v1/meetings?x=1"
  HeaderMap headers;
  std::string body;
  std::string content_type;          // sent only when non-empty
  double timeout_s = 10;
};

// Performs the call. Thread-safe (each call opens its own connection).
HttpReply http_request(const HttpCall& call);

// Conveniences.
HttpReply http_get(const std::string& url, const HeaderMap& headers = {});
// POST application/x-www-form-urlencoded built from ordered pairs.
HttpReply http_post_form(const std::string& url, const std::vector<std::pair<std::string, std::string>>& fields,
                         const HeaderMap& headers = {});
HttpReply http_post_json(const std::string& url, const nlohmann::json& body, const HeaderMap& headers = {});

// RFC 3986 percent-encoding (unreserved characters kept), for building query strings in tests.
std::string url_encode(const std::string& s);
// "a=1&b=2" from ordered pairs, each side percent-encoded.
std::string query_string(const std::vector<std::pair<std::string, std::string>>& params);
// Decodes the query part of a URL (or a bare query) into ordered pairs; '+' means space.
std::vector<std::pair<std::string, std::string>> parse_query(const std::string& url_or_query);
// First value of key in a URL's query, "" when absent.
std::string query_param(const std::string& url, const std::string& key);
// The raw query string of a URL (after '?'), "" when it has none: a callback's query as a browser
// would send it.
std::string query_of(const std::string& url);

}  // namespace fb::test
