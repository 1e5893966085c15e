#include "events/event_pusher.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/utf8.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace fb::detail {

using nlohmann::json;

Headers standard_webhook_headers(std::string_view key, const std::string& id, int64_t timestamp_s, std::string_view body) {
  const std::string ts = std::to_string(timestamp_s);
  const std::string mac = hmac_sha256_parts(key, {id, ".", ts, ".", body});
  return {{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", "v1," + base64_encode(mac)}};
}

Result<std::string> parse_whsec(const std::string& secret, const char* setting) {
  constexpr std::string_view kPrefix = "whsec_";
  if (secret.rfind(kPrefix, 0) != 0) {
    return Status::Config(std::string("setting '") + setting + "' must be \"whsec_\" followed by base64");
  }
  auto key = base64_decode(std::string_view(secret).substr(kPrefix.size()));
  if (!key || key->size() < 16) {
    return Status::Config(std::string("setting '") + setting + "' must hold at least 16 bytes of base64 after \"whsec_\"");
  }
  return *key;
}

Result<std::unique_ptr<EventPusher>> EventPusher::open(Db& db, EventStore& store, HttpTransport& http, Clock& clock,
                                                        const EventsConfig& config) {
  FB_ASSIGN(std::string key, parse_whsec(config.push_secret, "events.push_secret"));
  FB_TRY(db.transaction([&]() -> Status {
    // Push starts with the events after the moment it was first configured.
    FB_ASSIGN(int64_t last, db.highest_id_given("events"));
    Stmt& q = db.prepare("INSERT INTO event_push_cursor(id, last_queued) VALUES(1, ?) ON CONFLICT DO NOTHING");
    return q.bind(1, last).run();
  }));
  return std::unique_ptr<EventPusher>(new EventPusher(db, store, http, clock, config, std::move(key)));
}

EventPusher::~EventPusher() { stop(); }

void EventPusher::start() {
  store_.on_append([this](int64_t) {
    std::lock_guard lock(mu_);
    wake_ = true;
    cv_.notify_all();
  });
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      auto r = run_once();
      if (!r.ok()) FB_LOG(kWarn, "events") << "event push round failed: " << r.status().message();
      const int64_t wait_ms = std::clamp<int64_t>(next_due_ms() - clock_.now_ms(), 10, 1000);
      lock.lock();
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return wake_ || stopping_; });
      wake_ = false;
    }
  });
}

void EventPusher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Status EventPusher::enqueue_new() {
  const int64_t now = clock_.now_ms();
  return db_.transaction([&]() -> Status {
    Stmt& ins = db_.prepare(
        "INSERT INTO event_deliveries(event_id, status, attempts, next_attempt_at, updated_at) "
        "SELECT id, 'pending', 0, ?, ? FROM events WHERE id > (SELECT last_queued FROM event_push_cursor WHERE id = 1) "
        "ON CONFLICT DO NOTHING");
    ins.bind_all(now, now);
    FB_TRY(ins.run());
    Stmt& cur = db_.prepare(
        "UPDATE event_push_cursor SET last_queued = MAX(last_queued, COALESCE((SELECT MAX(id) FROM events), 0)) "
        "WHERE id = 1");
    return cur.run();
  });
}

int64_t EventPusher::next_due_ms() {
  int64_t due = clock_.now_ms() + 1000;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare("SELECT MIN(next_attempt_at) FROM event_deliveries WHERE status = 'pending'");
    return each_row(q, [&](Stmt& r) {
      if (!r.is_null(0)) due = std::min(due, r.int64(0));
    });
  });
  return s.ok() ? due : clock_.now_ms() + 1000;
}

Result<int> EventPusher::run_once() {
  FB_TRY(enqueue_new());
  struct Due {
    int64_t event_id;
    int attempts;
  };
  std::vector<Due> due;
  const int64_t now = clock_.now_ms();
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(
        "SELECT event_id, attempts FROM event_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
        "ORDER BY event_id LIMIT 20");
    q.bind(1, now);
    return each_row(q, [&](Stmt& r) { due.push_back({r.int64(0), static_cast<int>(r.int64(1))}); });
  }));
  int attempted = 0;
  for (const Due& d : due) {
    FB_ASSIGN(auto page, store_.read(d.event_id - 1, 1));
    std::string error;
    int status = 0;
    if (page.empty() || page[0].id != d.event_id) {
      error = "the event is no longer in the feed (retention)";
    } else {
      const std::string body = EventStore::to_json(page[0]).dump();
      HttpRequest req{"POST", config_.push_url,
                      standard_webhook_headers(key_, "evt_" + std::to_string(d.event_id), clock_.now_s(), body), body,
                      "application/json"};
      auto resp = http_.send(req);
      ++attempted;
      if (!resp.ok()) {
        error = resp.status().message();
      } else {
        status = resp->status;
        // The host's bytes, cut on a character: stored as text (PostgreSQL refuses bytes that are
        // not UTF-8) and listed as JSON.
        if (status / 100 != 2) error = "HTTP " + std::to_string(status) + ": " + utf8_text(resp->body, 200);
      }
    }
    const int attempts = d.attempts + 1;
    const bool delivered = error.empty();
    const bool give_up = !delivered && (attempts >= config_.push_max_attempts || (status == 0 && page.empty()));
    const int64_t backoff = std::min(config_.push_backoff_max_ms,
                                     config_.push_backoff_ms << std::min(attempts - 1, 30));
    FB_TRY(db_.transaction([&]() -> Status {
      Stmt& u = db_.prepare(
          "UPDATE event_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ?, "
          "updated_at = ? WHERE event_id = ?");
      u.bind_all(delivered ? "delivered" : (give_up ? "failed" : "pending"), attempts, status,
                 delivered ? std::optional<std::string>() : std::optional<std::string>(error),
                 clock_.now_ms() + backoff, clock_.now_ms(), d.event_id);
      return u.run();
    }));
    if (give_up) {
      FB_LOG(kError, "events") << "push of event " << d.event_id << " failed (attempt " << attempts
                               << ", giving up): " << error;
    } else if (!delivered) {
      FB_LOG(kWarn, "events") << "push of event " << d.event_id << " failed (attempt " << attempts << "): " << error;
    }
  }
  return attempted;
}

Result<std::string> EventPusher::deliveries_json(int limit) {
  json out = json::array();
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(
        "SELECT event_id, status, attempts, last_status, last_error, next_attempt_at, updated_at FROM event_deliveries "
        "ORDER BY event_id DESC LIMIT ?");
    q.bind(1, std::clamp(limit, 1, 1000));
    return each_row(q, [&](Stmt& r) {
      out.push_back({{"event_id", r.int64(0)},
                     {"status", r.text(1)},
                     {"attempts", r.int64(2)},
                     {"last_status", r.is_null(3) ? json(nullptr) : json(r.int64(3))},
                     {"last_error", r.is_null(4) ? json(nullptr) : json(r.text(4))},
                     {"next_attempt_at", r.int64(5)},
                     {"updated_at", r.int64(6)}});
    });
  }));
  return out.dump();
}

}  // namespace fb::detail
