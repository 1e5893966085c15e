#include "sim/sim_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/clock.h"
#include "core/random.h"
#include "sim/sim_signing.h"

namespace fb::sim {
namespace {

// Parses an admin JSON body; an empty body is {}.
bool parse_body(const httplib::Request& req, nlohmann::json* out, std::string* why) {
  if (req.body.empty()) {
    *out = nlohmann::json::object();
    return true;
  }
  *out = nlohmann::json::parse(req.body, nullptr, false);
  if (out->is_discarded() || !out->is_object()) {
    *why = "body must be a JSON object";
    return false;
  }
  return true;
}

nlohmann::json user_json(const User& u) {
  return {{"email", u.email}, {"name", u.name}, {"team", u.team}, {"api_key", u.api_key},
          {"created_at", iso8601(u.created_at)}};
}

}  // namespace

Simulator::Simulator(SimOptions opts)
    : opts_(std::move(opts)), svr_(std::make_unique<httplib::Server>()), knobs_(opts_.knobs), gen_(opts_.seed),
      fault_rng_(opts_.seed ^ 0xFA17ULL) {
  if (opts_.redirect_uris.empty()) opts_.redirect_uris.push_back("http://127.0.0.1:8787/oauth/callback");
  users_ = default_users(opts_.seed);
  int64_t anchor = opts_.anchor ? opts_.anchor : now_ms() / 1000 / 60 * 60 - 3600;
  for (auto& m : gen_.initial(opts_.meetings, anchor, 100000000 + static_cast<int64_t>(opts_.seed % 1000) * 1000, users_)) {
    insert_meeting(std::move(m));
  }
  if (last_id_ == 0) last_id_ = 100000000;
  sender_ = std::make_unique<Sender>(
      opts_.sender_threads,
      [this] {
        std::lock_guard<std::mutex> lock(mu_);
        return knobs_;
      },
      [this](const nlohmann::json& a) { record_delivery(a); });
  svr_->new_task_queue = [] { return new httplib::ThreadPool(32); };
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle waits for the
  // client's delayed ACK and every reused keep-alive connection stalls ~40 ms.
  svr_->set_tcp_nodelay(true);
  if (!opts_.quiet) {
    svr_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      // The path only: queries and bodies may carry codes, tokens or secrets.
      std::fprintf(stderr, "fathom-sim: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });
  }
  svr_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    res.status = 500;
    res.set_content(nlohmann::json({{"error", "internal_error"}, {"message", what}}).dump(), "application/json");
  });
  install_routes();
}

Simulator::~Simulator() {
  stop();
  sender_->stop();
}

int Simulator::bind() {
  if (opts_.port == 0) return svr_->bind_to_any_port(opts_.host);
  return svr_->bind_to_port(opts_.host, opts_.port) ? opts_.port : -1;
}

void Simulator::run() { svr_->listen_after_bind(); }

void Simulator::stop() {
  if (svr_->is_running()) svr_->stop();
}

int64_t Simulator::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t Simulator::mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Simulator::send_json(httplib::Response& res, int status, const nlohmann::json& body) const {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void Simulator::send_ojson(httplib::Response& res, int status, const ojson& body) const {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void Simulator::send_api_error(httplib::Response& res, int status, const std::string& code,
                               const std::string& message) const {
  res.status = status;
  if (knobs_.error_body == "json") {
    res.set_content(nlohmann::json({{"error", code}, {"message", message}}).dump(), "application/json");
  } else if (knobs_.error_body == "text") {
    res.set_content(code + ": " + message, "text/plain");
  } else {
    res.body.clear();
  }
}

void Simulator::set_rate_headers(httplib::Response& res, const RateDecision& d, bool limited) const {
  res.set_header("RateLimit-Limit", std::to_string(d.limit));
  res.set_header("RateLimit-Remaining", std::to_string(d.remaining));
  res.set_header("RateLimit-Reset", std::to_string(d.reset_s));
  if (limited && knobs_.retry_after) res.set_header("Retry-After", std::to_string(d.reset_s));
}

bool Simulator::pre_request(const httplib::Request& req, httplib::Response& res) {
  int64_t latency;
  {
    std::lock_guard<std::mutex> lock(mu_);
    latency = knobs_.latency_ms;
  }
  if (latency > 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      api_concurrent_max_ = std::max(api_concurrent_max_, ++api_in_latency_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(latency));
    std::lock_guard<std::mutex> lock(mu_);
    --api_in_latency_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (req.path.rfind(it->path_prefix, 0) != 0) continue;
    Fault f = *it;
    if (--it->remaining <= 0) faults_.erase(it);
    ++faults_injected_;
    if (f.status == 429) set_rate_headers(res, {false, knobs_.rate_limit, 0, f.reset_s}, true);
    send_api_error(res, f.status, f.status == 429 ? "rate_limited" : "injected_fault",
                   "fault injected by /_sim/faults");
    return false;
  }
  if (knobs_.fault_rate > 0 && std::uniform_real_distribution<double>(0, 1)(fault_rng_) < knobs_.fault_rate) {
    ++faults_injected_;
    send_api_error(res, static_cast<int>(knobs_.fault_rate_status), "injected_fault", "random fault (fault_rate)");
    return false;
  }
  return true;
}

const User* Simulator::find_user(const std::string& email) const {
  for (const auto& u : users_) {
    if (u.email == email) return &u;
  }
  return nullptr;
}

const Meeting* Simulator::find_meeting(int64_t id) const {
  auto k = by_id_.find(id);
  if (k == by_id_.end()) return nullptr;
  auto it = meetings_.find(k->second);
  return it == meetings_.end() ? nullptr : &it->second;
}

void Simulator::insert_meeting(Meeting m) {
  Key k{m.created_at, m.recording_id};
  by_id_[m.recording_id] = k;
  last_id_ = std::max(last_id_, m.recording_id);
  meetings_.emplace(k, std::move(m));
}

bool Simulator::visible(const Meeting& m, const Caller& c) const {
  return m.recorder_email == c.email || (!m.team.empty() && m.team == c.team);
}

std::string Simulator::new_token(const char* prefix) { return prefix + fb::detail::system_random().token(32); }

void Simulator::record_delivery(const nlohmann::json& a) {
  std::lock_guard<std::mutex> lock(mu_);
  if (a.value("status", nlohmann::json()).is_string()) ++webhook_refused_;
  if (a.value("kind", "") == "webhook") webhook_deliveries_.push_back(a);
  else callback_deliveries_.push_back(a);
}

nlohmann::json Simulator::counters_json() const {
  int64_t token_total = 0;
  for (const auto& [k, v] : token_requests_) token_total += v;
  nlohmann::json out = {{"token_requests", token_requests_},
                        {"token_requests_total", token_total},
                        {"token_errors", token_errors_},
                        {"token_rate_limited", token_rate_limited_},
                        {"authorize", authorize_},
                        {"api_calls", api_calls_},
                        {"api_calls_total", api_calls_total_},
                        {"api_statuses", api_statuses_},
                        {"rate_limited", rate_limited_},
                        {"faults_injected", faults_injected_},
                        {"api_concurrent_max", api_concurrent_max_},
                        {"webhook_deliveries", webhook_deliveries_},
                        {"webhook_refused", webhook_refused_},
                        {"token_late_answers", token_late_answers_},
                        {"callback_deliveries", callback_deliveries_},
                        {"webhook_pending", sender_->pending()}};
  // Empty maps must still be objects, never null.
  for (const char* k : {"token_requests", "token_errors", "authorize", "api_calls", "api_statuses"}) {
    if (out[k].is_null()) out[k] = nlohmann::json::object();
  }
  for (const char* k : {"webhook_deliveries", "callback_deliveries"}) {
    if (out[k].is_null()) out[k] = nlohmann::json::array();
  }
  return out;
}

void Simulator::reset_counters() {
  token_requests_.clear();
  token_errors_.clear();
  api_calls_.clear();
  api_statuses_.clear();
  authorize_.clear();
  api_calls_total_ = rate_limited_ = token_rate_limited_ = faults_injected_ = webhook_refused_ = 0;
  token_late_answers_ = 0;
  api_concurrent_max_ = 0;
  webhook_deliveries_.clear();
  callback_deliveries_.clear();
}

void Simulator::install_routes() {
  install_admin_routes();
  install_oauth_routes();
  install_api_routes();
  // Anything else: a JSON 404 (registered last; httplib tries routes in order).
  auto not_found = [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    send_api_error(res, 404, "not_found", "no route for " + req.method + " " + req.path);
  };
  svr_->Get(".*", not_found);
  svr_->Post(".*", not_found);
  svr_->Put(".*", not_found);
  svr_->Patch(".*", not_found);
  svr_->Delete(".*", not_found);
}

void Simulator::install_admin_routes() {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  auto bad = [this](Res res, const std::string& why) { send_json(res, 400, {{"error", "bad_request"}, {"message", why}}); };

  svr_->Get("/_sim/health", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    send_json(res, 200, {{"ok", true}, {"meetings", meetings_.size()}, {"users", users_.size()}});
  });

  svr_->Get("/_sim/config", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    send_json(res, 200, knobs_to_json(knobs_));
  });
  svr_->Post("/_sim/config", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    std::lock_guard<std::mutex> lock(mu_);
    std::string err = apply_knobs_json(knobs_, body);
    if (!err.empty()) return bad(res, err);
    send_json(res, 200, knobs_to_json(knobs_));
  });

  svr_->Get("/_sim/counters", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    send_json(res, 200, counters_json());
  });
  svr_->Post("/_sim/counters/reset", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    reset_counters();
    send_json(res, 200, counters_json());
  });
  svr_->Post("/_sim/rate_limits/reset", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    api_limiter_.reset();
    token_limiter_.reset();
    send_json(res, 200, {{"ok", true}});
  });

  svr_->Get("/_sim/users", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : users_) out.push_back(user_json(u));
    send_json(res, 200, out);
  });
  svr_->Post("/_sim/users", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    if (!body.contains("email") || !body["email"].is_string() || body["email"].get<std::string>().find('@') == std::string::npos) {
      return bad(res, "'email' (an email address) is required");
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::string email = body["email"];
    if (find_user(email)) return send_json(res, 409, {{"error", "conflict"}, {"message", "user exists: " + email}});
    User u{email, body.value("name", email.substr(0, email.find('@'))), body.value("team", ""),
           "fk_" + fb::detail::system_random().token(30), now_ms() / 1000};
    users_.push_back(u);
    send_json(res, 201, user_json(u));
  });

  svr_->Get("/_sim/meetings", [this](Req req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<Caller> viewer;
    if (req.has_param("visible_to")) {
      const User* u = find_user(req.get_param_value("visible_to"));
      if (!u) return send_json(res, 404, {{"error", "not_found"}, {"message", "unknown user"}});
      viewer = Caller{u->email, u->team, false};
    }
    nlohmann::json items = nlohmann::json::array();
    for (const auto& [k, m] : meetings_) {
      if (viewer && !visible(m, *viewer)) continue;
      items.push_back({{"recording_id", m.recording_id},
                       {"created_at", iso8601(m.created_at)},
                       {"recorded_by", m.recorder_email},
                       {"team", m.team},
                       {"title", m.title},
                       {"calendar_invitees_domains_type", m.has_external() ? "one_or_more_external" : "only_internal"}});
    }
    send_json(res, 200, {{"count", items.size()}, {"items", items}});
  });
  svr_->Get(R"(/_sim/meetings/(\d+))", [this](Req req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    const Meeting* m = find_meeting(std::stoll(req.matches[1]));
    if (!m) return send_json(res, 404, {{"error", "not_found"}, {"message", "unknown recording id"}});
    send_ojson(res, 200, meeting_json(*m, {true, true, true, true}, users_));
  });
  svr_->Post("/_sim/meetings", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    int64_t count = 1;
    if (body.contains("count")) {
      if (!body["count"].is_number_integer() || body["count"].get<int64_t>() < 1 || body["count"].get<int64_t>() > 100000) {
        return bad(res, "'count' must be an integer 1..100000");
      }
      count = body["count"];
    }
    std::lock_guard<std::mutex> lock(mu_);
    const User* recorder = nullptr;
    if (body.contains("recorded_by")) {
      if (!body["recorded_by"].is_string() || !(recorder = find_user(body["recorded_by"]))) {
        return bad(res, "'recorded_by' must be the email of a simulator user");
      }
    }
    int64_t created = std::max(now_ms() / 1000, meetings_.empty() ? 0 : meetings_.begin()->first.created_at);
    if (body.contains("created_at")) {
      if (!body["created_at"].is_string() || !fb::detail::parse_iso8601(body["created_at"], &created)) {
        return bad(res, "'created_at' must be an ISO 8601 timestamp");
      }
    }
    Rng pick(static_cast<uint64_t>(last_id_));
    nlohmann::json ids = nlohmann::json::array();
    for (int64_t i = 0; i < count; ++i) {
      const User& who = recorder ? *recorder : users_[static_cast<size_t>(pick.next() % users_.size())];
      int64_t id = last_id_ + gen_.next_id_gap();
      insert_meeting(gen_.make(id, created, who, users_));
      ids.push_back(id);
    }
    bool complete = body.value("complete", false);
    std::vector<Delivery> out;
    if (complete) {
      for (const auto& id : ids) {
        for (auto& d : deliveries_for(*find_meeting(id.get<int64_t>()))) out.push_back(std::move(d));
      }
    }
    for (auto& d : out) sender_->submit(std::move(d));
    send_json(res, 201, {{"recording_ids", ids}});
  });
  svr_->Post(R"(/_sim/meetings/(\d+)/complete)", [this](Req req, Res res) {
    std::vector<Delivery> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Meeting* m = find_meeting(std::stoll(req.matches[1]));
      if (!m) return send_json(res, 404, {{"error", "not_found"}, {"message", "unknown recording id"}});
      out = deliveries_for(*m);
    }
    nlohmann::json ids = nlohmann::json::array();
    for (const auto& d : out) ids.push_back({{"message_id", d.message_id}, {"webhook_id", d.webhook_id}, {"url", d.url}});
    for (auto& d : out) sender_->submit(std::move(d));
    send_json(res, 200, {{"deliveries", ids}});
  });

  svr_->Get("/_sim/faults", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& f : faults_) {
      out.push_back({{"status", f.status}, {"remaining", f.remaining}, {"path_prefix", f.path_prefix}, {"reset_s", f.reset_s}});
    }
    send_json(res, 200, out);
  });
  svr_->Delete("/_sim/faults", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.clear();
    send_json(res, 200, nlohmann::json::array());
  });
  svr_->Post("/_sim/faults", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    Fault f;
    if (!body.contains("status") || !body["status"].is_number_integer() || body["status"] < 400 || body["status"] > 599) {
      return bad(res, "'status' must be an HTTP error status 400..599 (e.g. 429, 500, 503)");
    }
    f.status = body["status"];
    f.remaining = body.value("count", 1);
    if (f.remaining < 1) return bad(res, "'count' must be >= 1");
    f.path_prefix = body.value("path_prefix", "/external/v1");
    f.reset_s = body.value("reset_s", 1);
    std::lock_guard<std::mutex> lock(mu_);
    faults_.push_back(f);
    send_json(res, 201, {{"queued", faults_.size()}});
  });

  svr_->Post("/_sim/grants/revoke", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    if (!body.contains("user") || !body["user"].is_string()) return bad(res, "'user' (an email) is required");
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (auto& [id, g] : grants_) {
      if (g.user == body["user"] && !g.revoked) {
        revoke_grant(id);
        ++n;
      }
    }
    send_json(res, 200, {{"revoked_grants", n}});
  });
  svr_->Get("/_sim/grants", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    int64_t now = now_ms();
    for (const auto& [id, g] : grants_) {
      int64_t live_access = 0, live_refresh = 0;
      for (const auto& [t, a] : access_tokens_) live_access += a.grant_id == id && !a.revoked && a.expires_ms > now;
      for (const auto& [t, r] : refresh_tokens_) live_refresh += r.grant_id == id && !r.used;
      out.push_back({{"id", id}, {"user", g.user}, {"client_id", g.client_id}, {"revoked", g.revoked},
                     {"live_access_tokens", live_access}, {"live_refresh_tokens", g.revoked ? 0 : live_refresh}});
    }
    send_json(res, 200, out);
  });
  svr_->Post("/_sim/tokens/expire", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    std::lock_guard<std::mutex> lock(mu_);
    std::string user = body.value("user", "");
    int64_t now = now_ms(), n = 0;
    for (auto& [t, a] : access_tokens_) {
      if (!user.empty() && grants_[a.grant_id].user != user) continue;
      if (a.expires_ms > now) {
        a.expires_ms = now - 1;
        ++n;
      }
    }
    send_json(res, 200, {{"expired", n}});
  });

  // A webhook made by hand in the user's settings (User Settings -> API Access): Fathom asks for
  // the URL, creates the webhook and shows its secret. No API call, no rate limit.
  svr_->Post("/_sim/webhooks", [this, bad](Req req, Res res) {
    nlohmann::json body;
    std::string why;
    if (!parse_body(req, &body, &why)) return bad(res, why);
    std::lock_guard<std::mutex> lock(mu_);
    const User* owner = find_user(body.value("owner", ""));
    if (!owner) return bad(res, "owner must be the email of an account");
    std::string url = body.value("destination_url", "");
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return bad(res, "destination_url must be http(s)");
    Webhook w;
    w.id = "manual_" + fb::detail::system_random().token(9);
    w.owner = owner->email;
    w.url = url;
    w.secret = new_webhook_secret();
    w.created_at = now_ms() / 1000;
    w.inc = {true, true, true, true};
    w.triggered_for = {"my_recordings", "shared_team_recordings"};
    webhooks_[w.id] = w;
    send_json(res, 201, {{"id", w.id}, {"owner", w.owner}, {"url", w.url}, {"secret", w.secret}});
  });
  // The user regenerates the webhook's secret in the settings: deliveries are signed with the new one.
  svr_->Post(R"(/_sim/webhooks/([^/]+)/rotate)", [this](Req req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = webhooks_.find(req.matches[1]);
    if (it == webhooks_.end()) return send_json(res, 404, {{"error", "not_found"}, {"message", "no such webhook"}});
    it->second.secret = new_webhook_secret();
    send_json(res, 200, {{"id", it->second.id}, {"secret", it->second.secret}});
  });
  svr_->Get("/_sim/webhooks", [this](Req, Res res) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [id, w] : webhooks_) {
      out.push_back({{"id", w.id}, {"owner", w.owner}, {"url", w.url}, {"secret", w.secret},
                     {"created_at", iso8601(w.created_at)}, {"include_transcript", w.inc.transcript},
                     {"include_summary", w.inc.summary}, {"include_action_items", w.inc.action_items},
                     {"include_crm_matches", w.inc.crm_matches}, {"triggered_for", w.triggered_for}});
    }
    send_json(res, 200, out);
  });
}

}  // namespace fb::sim
