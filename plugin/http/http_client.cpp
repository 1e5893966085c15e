#include "http/http_client.h"

#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <cctype>
#include <ctime>
#include <iomanip>
#include <locale>
#include <sstream>

#include "crypto/encoding.h"

namespace fb::detail {
namespace {

constexpr size_t kMaxIdlePerOrigin = 16;

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return v;
  }
  return {};
}

bool HttpResponse::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return true;
  }
  return false;
}

std::string Url::origin() const { return scheme + "://" + host + ":" + std::to_string(port); }

Result<Url> parse_url(std::string_view url) {
  Url u;
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Status::InvalidArgument("URL has no scheme: '" + std::string(url) + "'");
  u.scheme = std::string(url.substr(0, sep));
  std::transform(u.scheme.begin(), u.scheme.end(), u.scheme.begin(), ::tolower);
  if (u.scheme != "http" && u.scheme != "https") {
    return Status::InvalidArgument("URL scheme must be http or https: '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument("URL must not carry credentials");
  }
  u.port = u.scheme == "https" ? 443 : 80;
  if (!authority.empty() && authority.front() == '[') {  // IPv6 literal
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("URL has a malformed IPv6 host");
    u.host = std::string(authority.substr(1, close - 1));
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority.front() == ':') authority = authority.substr(1);
    else authority = {};
    if (!authority.empty()) u.port = std::atoi(std::string(authority).c_str());
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      std::string p(authority.substr(colon + 1));
      if (p.empty() || !std::all_of(p.begin(), p.end(), ::isdigit)) {
        return Status::InvalidArgument("URL has a malformed port: '" + std::string(url) + "'");
      }
      u.port = std::atoi(p.c_str());
    }
  }
  if (u.host.empty()) return Status::InvalidArgument("URL has no host: '" + std::string(url) + "'");
  if (u.port <= 0 || u.port > 65535) return Status::InvalidArgument("URL port out of range");
  if (size_t hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
  u.path_and_query = tail.empty() ? "/" : (tail.front() == '?' ? "/" + std::string(tail) : std::string(tail));
  return u;
}

bool is_loopback_host(std::string_view host) {
  if (ascii_iequals(host, "localhost") || host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
  // 127.0.0.0/8 in dotted-quad form: four numbers 0-255, the first 127.
  int parts = 0, value = -1;
  int first = -1;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (value < 0 || value > 255) return false;
      if (parts == 0) first = value;
      ++parts;
      value = -1;
    } else if (host[i] >= '0' && host[i] <= '9') {
      value = (value < 0 ? 0 : value * 10) + (host[i] - '0');
      if (value > 255) return false;
    } else {
      return false;
    }
  }
  return parts == 4 && first == 127;
}

Status check_secure_url(const std::string& url, const char* name) {
  auto u = parse_url(url);
  if (!u.ok()) return Status::Config(std::string("setting '") + name + "' is not a valid http(s) URL: " + u.status().message());
  if (u->scheme == "http" && !is_loopback_host(u->host)) {
    return Status::Config(std::string("setting '") + name + "' is http:// to '" + u->host +
                          "': the client secret, tokens and API keys would travel in clear; use https:// "
                          "(plain http is allowed only for loopback hosts: 127.0.0.1, ::1, localhost)");
  }
  return Status::Ok();
}

namespace {

std::string env_either(const char* upper, const char* lower) {
  if (const char* v = std::getenv(upper); v && *v) return v;
  if (const char* v = std::getenv(lower); v && *v) return v;
  return {};
}

// One NO_PROXY entry against the target (see HttpClientOptions::no_proxy).
bool no_proxy_matches(std::string_view entry, const Url& target) {
  entry = trim_ows(entry);
  if (entry.empty()) return false;
  if (entry == "*") return true;
  std::string_view host = entry;
  if (size_t colon = entry.rfind(':'); colon != std::string_view::npos && entry.find(':') == colon) {
    if (std::string(entry.substr(colon + 1)) != std::to_string(target.port)) return false;
    host = entry.substr(0, colon);
  }
  bool subdomains_only = !host.empty() && host.front() == '.';
  if (subdomains_only) host.remove_prefix(1);
  const std::string& t = target.host;
  if (!subdomains_only && ascii_iequals(t, host)) return true;
  return t.size() > host.size() && t[t.size() - host.size() - 1] == '.' &&
         ascii_iequals(std::string_view(t).substr(t.size() - host.size()), host);
}

}  // namespace

std::optional<Url> proxy_for(const Url& target, const HttpClientOptions& options) {
  if (is_loopback_host(target.host)) return std::nullopt;
  std::string proxy = options.proxy;
  if (proxy.empty()) {
    proxy = target.scheme == "https" ? env_either("HTTPS_PROXY", "https_proxy") : env_either("HTTP_PROXY", "http_proxy");
  }
  if (proxy.empty()) return std::nullopt;
  std::string no_proxy = options.no_proxy.empty() ? env_either("NO_PROXY", "no_proxy") : options.no_proxy;
  size_t start = 0;
  while (start <= no_proxy.size()) {
    size_t comma = no_proxy.find(',', start);
    if (comma == std::string::npos) comma = no_proxy.size();
    if (no_proxy_matches(std::string_view(no_proxy).substr(start, comma - start), target)) return std::nullopt;
    start = comma + 1;
  }
  if (proxy.find("://") == std::string::npos) proxy = "http://" + proxy;  // "host:port", as curl accepts
  auto parsed = parse_url(proxy);
  if (!parsed.ok()) return std::nullopt;  // the setting is validated at load; a bad variable means direct
  return *parsed;
}

HttplibTransport::HttplibTransport(HttpClientOptions options) : options_(std::move(options)) {}
HttplibTransport::~HttplibTransport() = default;

std::unique_ptr<httplib::Client> HttplibTransport::acquire(const Url& url) {
  std::string origin = url.origin();
  {
    std::lock_guard lock(mu_);
    auto& pool = idle_[origin];
    if (!pool.empty()) {
      auto c = std::move(pool.back());
      pool.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(origin);
  c->set_keep_alive(true);
  c->set_connection_timeout(options_.connect_timeout_ms / 1000, (options_.connect_timeout_ms % 1000) * 1000);
  c->set_read_timeout(options_.read_timeout_ms / 1000, (options_.read_timeout_ms % 1000) * 1000);
  c->set_write_timeout(options_.write_timeout_ms / 1000, (options_.write_timeout_ms % 1000) * 1000);
  c->set_follow_location(false);
  c->set_tcp_nodelay(true);  // requests go out as header and body writes: no Nagle wait between them
  c->set_decompress(true);
  if (auto proxy = proxy_for(url, options_)) c->set_proxy(proxy->host, proxy->port);
  if (url.scheme == "https") {
    c->enable_server_certificate_verification(options_.verify_tls);
    if (!options_.ca_file.empty()) c->set_ca_cert_path(options_.ca_file.c_str());
  }
  return c;
}

void HttplibTransport::release(const std::string& origin, std::unique_ptr<httplib::Client> client) {
  std::lock_guard lock(mu_);
  auto& pool = idle_[origin];
  if (pool.size() < kMaxIdlePerOrigin) pool.push_back(std::move(client));
}

Result<HttpResponse> HttplibTransport::send(const HttpRequest& request) {
  FB_ASSIGN(Url url, parse_url(request.url));
  auto client = acquire(url);
  if (request.timeout_ms > 0) {
    // One budget for the whole request: the connect gets at most half, the answer the rest.
    const int connect = std::min(request.timeout_ms / 2, options_.connect_timeout_ms);
    const int rest = request.timeout_ms - connect;
    client->set_connection_timeout(connect / 1000, (connect % 1000) * 1000);
    client->set_read_timeout(rest / 1000, (rest % 1000) * 1000);
    client->set_write_timeout(rest / 1000, (rest % 1000) * 1000);
  }
  httplib::Headers headers;
  for (const auto& [k, v] : request.headers) headers.emplace(k, v);
  if (!headers.count("User-Agent")) headers.emplace("User-Agent", options_.user_agent);
  if (options_.gzip && !headers.count("Accept-Encoding")) headers.emplace("Accept-Encoding", "gzip");
  const std::string& path = url.path_and_query;
  httplib::Result res{nullptr, httplib::Error::Unknown};
  const std::string& m = request.method;
  const std::string ctype = request.content_type.empty() ? "application/octet-stream" : request.content_type;
  if (m == "GET") res = client->Get(path, headers);
  else if (m == "POST") res = client->Post(path, headers, request.body, ctype);
  else if (m == "PUT") res = client->Put(path, headers, request.body, ctype);
  else if (m == "PATCH") res = client->Patch(path, headers, request.body, ctype);
  else if (m == "DELETE") res = request.body.empty() ? client->Delete(path, headers)
                                                     : client->Delete(path, headers, request.body, ctype);
  else if (m == "HEAD") res = client->Head(path, headers);
  else return Status::InvalidArgument("unsupported HTTP method '" + m + "'");

  if (!res) {
    httplib::Error err = res.error();
    std::string what = "HTTP " + m + " " + url.origin() + " failed: " + httplib::to_string(err);
    // The client's socket is in an unknown state: drop it instead of pooling it.
    if (err == httplib::Error::Read || err == httplib::Error::Write) {
      // The request went out (a stale pooled connection is checked before it is used), and no
      // answer came: a read timeout or a connection lost mid-way. The server may have acted.
      return Status::Timeout(what + " (no answer: the server may have processed the request)");
    }
    return Status::Unavailable(what);
  }
  HttpResponse out;
  out.status = res->status;
  out.body = std::move(res->body);
  out.headers.reserve(res->headers.size());
  for (const auto& [k, v] : res->headers) out.headers.emplace_back(k, v);
  bool close = false;
  for (const auto& [k, v] : out.headers) {
    if (ascii_iequals(k, "Connection") && ascii_iequals(v, "close")) close = true;
  }
  if (!close && request.timeout_ms > 0) {
    // Back to the transport's own timeouts before the connection is pooled.
    client->set_connection_timeout(options_.connect_timeout_ms / 1000, (options_.connect_timeout_ms % 1000) * 1000);
    client->set_read_timeout(options_.read_timeout_ms / 1000, (options_.read_timeout_ms % 1000) * 1000);
    client->set_write_timeout(options_.write_timeout_ms / 1000, (options_.write_timeout_ms % 1000) * 1000);
  }
  if (!close) release(url.origin(), std::move(client));
  return out;
}

int64_t parse_retry_after_ms(std::string_view value, int64_t now_unix_ms) {
  std::string v(trim_ows(value));
  if (v.empty()) return -1;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 9) return -1;  // more than 31 years: not a delay anyone means
    return std::stoll(v) * 1000;
  }
  // HTTP-date: the three forms, always GMT, English names whatever the host's locale.
  static const char* const kForms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
  for (const char* form : kForms) {
    std::tm tm{};
    std::istringstream in(v);
    in.imbue(std::locale::classic());
    in >> std::get_time(&tm, form);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) continue;
    int64_t at_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
    return std::max<int64_t>(0, at_ms - now_unix_ms);
  }
  return -1;
}

}  // namespace fb::detail
