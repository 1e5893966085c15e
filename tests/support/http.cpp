#include "support/http.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "crypto/encoding.h"

namespace fb::test {
namespace {

int lower(char c) { return std::tolower(static_cast<unsigned char>(c)); }

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return lower(x) < lower(y); });
}

std::string HttpReply::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

bool HttpReply::has_header(const std::string& name) const { return headers.count(name) > 0; }

nlohmann::json HttpReply::json() const {
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) {
    throw std::runtime_error("HTTP " + std::to_string(status) + " body is not JSON: '" + body.substr(0, 300) + "'" +
                             (error.empty() ? "" : " (" + error + ")"));
  }
  return parsed;
}

// A deliberately small HTTP/1.1 client over a plain socket ("Connection: close"), so what a test
// observes is exactly what went over the wire. (cpp-httplib 0.11's client percent-decodes
// response header values, which would turn an encoded Location into a different URL.)
HttpReply http_request(const HttpCall& call) {
  HttpReply reply;
  const std::string prefix = "http://";
  if (call.url.rfind(prefix, 0) != 0) {
    reply.error = "only http:// URLs are supported: " + call.url;
    return reply;
  }
  size_t path_start = call.url.find_first_of("/?", prefix.size());
  std::string authority = call.url.substr(prefix.size(), path_start == std::string::npos ? std::string::npos
                                                                                          : path_start - prefix.size());
  std::string path = path_start == std::string::npos ? "/" : call.url.substr(path_start);
  if (path[0] == '?') path = "/" + path;
  if (size_t hash = path.find('#'); hash != std::string::npos) path.resize(hash);
  std::string host = authority, port = "80";
  if (size_t colon = authority.rfind(':'); colon != std::string::npos && authority.find(']') == std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.find(']') - 1);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &ai) != 0 || !ai) {
    reply.error = "cannot resolve " + authority;
    return reply;
  }
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  timeval tv{static_cast<time_t>(call.timeout_s),
             static_cast<suseconds_t>((call.timeout_s - static_cast<double>(static_cast<time_t>(call.timeout_s))) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc = fd < 0 ? -1 : ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  ::freeaddrinfo(ai);
  if (rc != 0) {
    reply.error = std::string("connect to ") + authority + " failed: " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return reply;
  }

  std::string req = call.method + " " + path + " HTTP/1.1\r\nHost: " + authority + "\r\nConnection: close\r\n";
  bool has_ua = false;
  for (const auto& [k, v] : call.headers) {
    req += k + ": " + v + "\r\n";
    if (iequals(k, "User-Agent")) has_ua = true;
  }
  if (!has_ua) req += "User-Agent: fb-test\r\n";
  if (!call.content_type.empty()) req += "Content-Type: " + call.content_type + "\r\n";
  if (!call.body.empty() || call.method == "POST" || call.method == "PUT" || call.method == "PATCH") {
    req += "Content-Length: " + std::to_string(call.body.size()) + "\r\n";
  }
  req += "\r\n" + call.body;
  for (size_t sent = 0; sent < req.size();) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      reply.error = std::string("send failed: ") + std::strerror(errno);
      ::close(fd);
      return reply;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      reply.error = errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : std::string("recv failed: ") + std::strerror(errno);
      ::close(fd);
      return reply;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);

  size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) {
    reply.error = "malformed HTTP response";
    return reply;
  }
  size_t line_end = raw.find("\r\n");
  reply.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  for (size_t pos = line_end + 2; pos < head_end;) {
    size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      size_t v = line.find_first_not_of(" \t", colon + 1);
      reply.headers.emplace(line.substr(0, colon), v == std::string::npos ? "" : line.substr(v));
    }
    pos = eol + 2;
  }
  std::string body = raw.substr(head_end + 4);
  if (reply.header("Transfer-Encoding").find("chunked") != std::string::npos) {
    std::string out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t len = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (len == 0) break;
      out += body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    body = out;
  } else if (reply.has_header("Content-Length")) {
    body.resize(std::min<size_t>(body.size(), std::strtoul(reply.header("Content-Length").c_str(), nullptr, 10)));
  }
  reply.body = std::move(body);
  return reply;
}

HttpReply http_get(const std::string& url, const HeaderMap& headers) {
  HttpCall call;
  call.url = url;
  call.headers = headers;
  return http_request(call);
}

HttpReply http_post_form(const std::string& url, const std::vector<std::pair<std::string, std::string>>& fields,
                         const HeaderMap& headers) {
  HttpCall call;
  call.method = "POST";
  call.url = url;
  call.headers = headers;
  call.body = query_string(fields);
  call.content_type = "application/x-www-form-urlencoded";
  return http_request(call);
}

HttpReply http_post_json(const std::string& url, const nlohmann::json& body, const HeaderMap& headers) {
  HttpCall call;
  call.method = "POST";
  call.url = url;
  call.headers = headers;
  call.body = body.dump();
  call.content_type = "application/json";
  return http_request(call);
}

std::string url_encode(const std::string& s) { return fb::detail::url_encode(s); }

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += url_encode(k) + "=" + url_encode(v);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(const std::string& url_or_query) {
  std::string q = url_or_query;
  if (size_t qm = q.find('?'); qm != std::string::npos) q = q.substr(qm + 1);
  else if (q.find("://") != std::string::npos) return {};  // a URL without a query
  if (size_t hash = q.find('#'); hash != std::string::npos) q = q.substr(0, hash);
  auto decoded = fb::detail::form_decode(q);
  return decoded ? *decoded : std::vector<std::pair<std::string, std::string>>{};
}

std::string query_param(const std::string& url, const std::string& key) {
  for (const auto& [k, v] : parse_query(url)) {
    if (k == key) return v;
  }
  return {};
}

std::string query_of(const std::string& url) {
  size_t q = url.find('?');
  return q == std::string::npos ? "" : url.substr(q + 1);
}

std::function<bool(size_t, httplib::DataSink&)> chunked_body(std::string body, size_t piece) {
  auto sent = std::make_shared<size_t>(0);
  return [body = std::move(body), piece, sent](size_t, httplib::DataSink& sink) {
    size_t n = std::min(piece, body.size() - *sent);
    sink.write(body.data() + *sent, n);
    *sent += n;
    if (*sent == body.size()) sink.done();
    return true;
  };
}

}  // namespace fb::test
