#include "server/event_routes.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/log.h"
#include "crypto/hash.h"

namespace fb::detail {

using nlohmann::json;

bool bearer_authorized(const ServerRequest& req, const std::string& token) {
  if (token.empty()) return true;
  std::string auth(req.header("Authorization"));
  std::string presented = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
  return constant_time_equal(sha256(presented), sha256(token));
}

// Requests parked until an event newer than their cursor exists or their deadline passes.
struct EventRoutes::Waiters {
  struct Parked {
    int64_t after = 0;
    int limit = 100;
    int64_t deadline_ms = 0;  // mono_ms()
    std::function<void(const std::vector<StoredEvent>&)> answer;
  };

  EventStore& store;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Parked> parked;  // guarded by mu
  bool dirty = false;          // guarded by mu: an event was appended, or a request parked
  bool stopping = false;       // guarded by mu
  std::thread thread;

  explicit Waiters(EventStore& s) : store(s) {}
  // Real monotonic milliseconds: how long a request is held.
  static int64_t mono_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void park(Parked p) {
    {
      std::lock_guard lock(mu);
      if (!stopping) {
        parked.push_back(std::move(p));
        dirty = true;
        cv.notify_all();
        return;
      }
    }
    answer_now(p, true);
  }

  void poke() {
    std::lock_guard lock(mu);
    dirty = true;
    cv.notify_all();
  }

  // Answers p when it has events or force is set; returns whether it was answered.
  bool answer_now(Parked& p, bool force) {
    auto events = store.read(p.after, p.limit);
    if (!events.ok()) {
      FB_LOG(kWarn, "events") << "reading the event feed failed: " << events.status().message();
      if (!force) return false;
      p.answer({});
      return true;
    }
    if (events->empty() && !force) return false;
    p.answer(*events);
    return true;
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      if (stopping && parked.empty()) return;
      // Sleep until something changed or the earliest deadline; re-read at least every second so
      // rows other processes appended are seen too.
      int64_t next = mono_ms() + 1000;
      for (const auto& p : parked) next = std::min(next, p.deadline_ms);
      if (!dirty && !stopping) {
        cv.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, next - mono_ms())));
      }
      dirty = false;
      std::vector<Parked> work;
      work.swap(parked);
      const bool force_all = stopping;
      lock.unlock();
      std::vector<Parked> keep;
      const int64_t now = mono_ms();
      for (auto& p : work) {
        if (!answer_now(p, force_all || now >= p.deadline_ms)) keep.push_back(std::move(p));
      }
      lock.lock();
      for (auto& p : keep) parked.push_back(std::move(p));
    }
  }
};

namespace {

void send_error(ServerResponse& res, int status, const std::string& code, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", code}, {"message", message}}.dump(), "application/json");
}

// Parses a non-negative integer query parameter; false after filling a 400 answer.
bool query_number(const ServerRequest& req, const char* key, int64_t lo, int64_t hi, int64_t* out, ServerResponse& res) {
  if (!req.has_param(key)) return true;
  std::string v = req.param(key);
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi) {
    send_error(res, 400, "invalid_argument",
               std::string("query parameter '") + key + "' must be a whole number in " + std::to_string(lo) + ".." +
                   std::to_string(hi) + ", not '" + v + "'");
    return false;
  }
  *out = n;
  return true;
}

std::string sse_body(const std::vector<StoredEvent>& events) {
  std::string out = "retry: 1000\n\n";
  if (events.empty()) out += ": no new events\n\n";
  for (const auto& e : events) {
    out += "id: " + std::to_string(e.id) + "\nevent: " + e.event.type + "\ndata: " + EventStore::to_json(e).dump() + "\n\n";
  }
  return out;
}

}  // namespace

std::shared_ptr<EventRoutes> EventRoutes::mount(HttpServer& server, EventStore& store, std::string api_token) {
  auto waiters = std::make_shared<Waiters>(store);
  std::weak_ptr<Waiters> weak = waiters;
  store.on_append([weak](int64_t) {
    if (auto w = weak.lock()) w->poke();
  });
  waiters->thread = std::thread([w = waiters.get()] { w->run(); });

  auto handler = [weak, token = std::move(api_token)](bool stream) {
    return [weak, token, stream](const ServerRequest& req, Responder respond) {
      ServerResponse res;
      const std::string_view want = stream ? "/v1/events/stream" : "/v1/events";
      if (req.path != want) {
        send_error(res, 404, "not_found", "no route " + std::string(req.path));
        return respond(std::move(res));
      }
      if (!bearer_authorized(req, token)) {
        send_error(res, 401, "unauthenticated", "missing or wrong bearer token");
        return respond(std::move(res));
      }
      int64_t after = 0, limit = 100, wait_s = stream ? 25 : 0;
      if (stream && req.has_header("Last-Event-ID")) req.param("after");  // (header wins below)
      std::string last_event_id(req.header("Last-Event-ID"));
      if (!query_number(req, "after", 0, INT64_MAX, &after, res) || !query_number(req, "limit", 1, 1000, &limit, res) ||
          !query_number(req, "wait", 0, 60, &wait_s, res)) {
        return respond(std::move(res));
      }
      if (stream && !last_event_id.empty()) {
        char* end = nullptr;
        long long n = std::strtoll(last_event_id.c_str(), &end, 10);
        if (*end != '\0' || n < 0) {
          send_error(res, 400, "invalid_argument", "Last-Event-ID must be an event id, not '" + last_event_id + "'");
          return respond(std::move(res));
        }
        after = n;
      }
      auto w = weak.lock();
      if (!w) {
        send_error(res, 503, "unavailable", "the sidecar is stopping");
        return respond(std::move(res));
      }
      auto shared = std::make_shared<Responder>(std::move(respond));
      Waiters::Parked p;
      p.after = after;
      p.limit = static_cast<int>(limit);
      p.deadline_ms = Waiters::mono_ms() + wait_s * 1000;
      p.answer = [shared, stream, after](const std::vector<StoredEvent>& events) {
        ServerResponse out;
        out.set_header("Cache-Control", "no-store");
        if (stream) {
          out.set_content(sse_body(events), "text/event-stream");
          out.close = true;  // the stream ends here; EventSource comes back with Last-Event-ID
        } else {
          out.set_content(EventStore::page_json(events, after), "application/json");
        }
        (*shared)(std::move(out));
      };
      w->park(std::move(p));
    };
  };
  server.route_async("GET", "/v1/events", handler(false));
  server.route_async("GET", "/v1/events/stream", handler(true));
  return std::shared_ptr<EventRoutes>(new EventRoutes(std::move(waiters)));
}

void EventRoutes::stop() {
  if (!waiters_) return;
  {
    std::lock_guard lock(waiters_->mu);
    waiters_->stopping = true;
    waiters_->cv.notify_all();
  }
  if (waiters_->thread.joinable()) waiters_->thread.join();
}

EventRoutes::~EventRoutes() { stop(); }

}  // namespace fb::detail
