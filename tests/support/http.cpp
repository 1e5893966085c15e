#include "support/http.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "crypto/encoding.h"

namespace fb::test {
namespace {

int lower(char c) { return std::tolower(static_cast<unsigned char>(c)); }

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

HttpReply http_request(const HttpCall& call) {
  HttpReply reply;
  size_t scheme_end = call.url.find("://");
  if (scheme_end == std::string::npos) {
    reply.error = "URL has no scheme: " + call.url;
    return reply;
  }
  size_t path_start = call.url.find('/', scheme_end + 3);
  std::string origin = path_start == std::string::npos ? call.url : call.url.substr(0, path_start);
  std::string path = path_start == std::string::npos ? "/" : call.url.substr(path_start);

  httplib::Client cli(origin);
  auto seconds = static_cast<time_t>(call.timeout_s);
  auto micros = static_cast<time_t>((call.timeout_s - static_cast<double>(seconds)) * 1e6);
  cli.set_connection_timeout(seconds, micros);
  cli.set_read_timeout(seconds, micros);
  cli.set_write_timeout(seconds, micros);
  cli.set_follow_location(false);

  httplib::Request req;
  req.method = call.method;
  req.path = path;
  for (const auto& [k, v] : call.headers) req.headers.emplace(k, v);
  if (!call.content_type.empty()) req.headers.emplace("Content-Type", call.content_type);
  req.body = call.body;
  auto res = cli.send(req);
  if (!res) {
    reply.error = httplib::to_string(res.error());
    return reply;
  }
  reply.status = res->status;
  reply.body = res->body;
  for (const auto& [k, v] : res->headers) reply.headers.emplace(k, v);
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

}  // namespace fb::test
