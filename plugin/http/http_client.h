// http_client.h: the outbound HTTP seam. Services depend on HttpTransport; production uses
// HttplibTransport (cpp-httplib with OpenSSL), tests use it too against loopback servers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fathom_bridge/status.h"

namespace httplib {
class Client;
}

namespace fb::detail {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute: scheme://host[:port]/path?query
  Headers headers;
  std::string body;
  std::string content_type;  // set with a body
  // A budget for this whole request (0: the transport's own timeouts): the connect gets at most
  // half of it (and no more than the transport's connect timeout), sending and the answer the
  // rest. For calls a person waits on, e.g. the OAuth callback's code exchange.
  int timeout_ms = 0;
};

struct HttpResponse {
  int status = 0;
  Headers headers;  // names as received
  std::string body;
  // Case-insensitive lookup of the first header with this name ("" when absent).
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// Network-level failures come back as one of two codes, which tell whether the server may have
// acted on the request:
//   kUnavailable  the request never reached the server (connection refused or timed out, TLS
//                 handshake, name resolution): sending it again is safe.
//   kTimeout      the request was sent, in whole or in part, and no complete answer came (read
//                 timeout, connection lost while writing or reading): the outcome is unknown, and a
//                 non-idempotent request (a code exchange, a rotating refresh) may have been done.
// Any HTTP status, including 4xx/5xx, is a successful Result with that status.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Thread-safe.
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;
};

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  int port = 0;
  std::string path_and_query;  // starts with '/'
  std::string origin() const;  // scheme://host:port
};
// Parses an absolute http(s) URL; the message names what is wrong.
Result<Url> parse_url(std::string_view url);
// True for hosts that never leave the machine: "localhost", 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host);
// kConfig when `url` (the value of setting `name`) is not an http(s) URL, or is plain http:// to a
// host that is not loopback: what it carries (client secret, tokens, API keys) would travel in clear.
Status check_secure_url(const std::string& url, const char* name);

struct HttpClientOptions {
  int connect_timeout_ms = 10000;
  int read_timeout_ms = 30000;
  int write_timeout_ms = 30000;
  bool verify_tls = true;  // certificate and host name checks against the system CA store
  std::string ca_file;     // empty: the system store
  std::string user_agent = "fathom-bridge/0.1 (+cpp-httplib)";
  bool gzip = true;        // ask for and accept gzip
  // Outbound proxy, "http://host:port" (no credentials). Empty: HTTPS_PROXY / HTTP_PROXY (or their
  // lower-case forms) from the environment, by the target's scheme. An https target goes through
  // a CONNECT tunnel (TLS stays end to end); an http one is sent to the proxy in absolute form.
  std::string proxy;
  // Comma-separated hosts reached directly: "example.com" matches it and its subdomains,
  // ".example.com" only subdomains, "host:port" that port only, "*" everything. Empty: NO_PROXY
  // (or no_proxy) from the environment. Loopback (localhost, 127.0.0.0/8, ::1) is always reached
  // directly, as Go's net/http does: a proxy elsewhere cannot reach this machine's loopback.
  std::string no_proxy;
};

// The proxy for a request to target under options (and the environment when they leave it
// empty), or nullopt to connect directly.
std::optional<Url> proxy_for(const Url& target, const HttpClientOptions& options);

// cpp-httplib transport with a keep-alive connection pool per origin. Thread-safe.
class HttplibTransport final : public HttpTransport {
 public:
  explicit HttplibTransport(HttpClientOptions options = {});
  ~HttplibTransport() override;
  Result<HttpResponse> send(const HttpRequest& request) override;
  const HttpClientOptions& options() const { return options_; }

 private:
  std::unique_ptr<httplib::Client> acquire(const Url& url);
  void release(const std::string& origin, std::unique_ptr<httplib::Client> client);

  HttpClientOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<httplib::Client>>> idle_;  // guarded by mu_
};

// A Retry-After value (RFC 9110 section 10.2.3) as milliseconds to wait from now_unix_ms:
// delay-seconds ("120"), or an HTTP-date in any of the three forms a recipient must accept
// (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime
// "Sun Nov  6 08:49:37 1994"); a date in the past is 0. -1 when absent or malformed.
int64_t parse_retry_after_ms(std::string_view value, int64_t now_unix_ms);

}  // namespace fb::detail
