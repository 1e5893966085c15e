// The C ABI (fathom_bridge.h) as thin wrappers over fb::Bridge: check the handle, call the
// facade inside try/catch, record the message for fb_errmsg, return the code.
#include "fathom_bridge/fathom_bridge.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "c/crm_queue.h"
#include "bridge/bridge_impl.h"
#include "core/clock.h"
#include "core/log.h"
#include "fathom_bridge/bridge.h"

struct fb_bridge {
  std::unique_ptr<fb::Bridge> bridge;  // null when open failed
  std::string open_error;
  int open_code = FB_OK;
  std::atomic<bool> closed{false};
  // Queued CRM operations (fb_register_crm_operation_queued); shared with the bridge's handlers.
  std::shared_ptr<fb::detail::CrmQueue> crm_queue = std::make_shared<fb::detail::CrmQueue>();
};

namespace {

using nlohmann::json;

// Convention 2: the last failure message per (thread, handle).
thread_local std::unordered_map<const fb_bridge*, std::string> t_errors;

constexpr const char* kMisuse = "misuse: NULL, closed or failed handle";

int fail(fb_bridge* b, int code, std::string message) {
  if (b) t_errors[b] = std::move(message);
  return code;
}

int fail(fb_bridge* b, const fb::Status& s) { return fail(b, static_cast<int>(s.code()), s.message()); }

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

bool usable(fb_bridge* b) { return b && !b->closed.load() && b->bridge; }

fb::Caller caller_of(const char* tenant, const char* user, const char* team = nullptr) {
  return {tenant ? tenant : "", user ? user : "", team ? team : ""};
}

// Runs body for a usable handle, turning exceptions into FB_INTERNAL.
template <typename F>
int guarded(fb_bridge* b, F&& body) {
  if (!usable(b)) return fail(b, FB_MISUSE, kMisuse);
  try {
    return body(*b->bridge);
  } catch (const std::exception& e) {
    return fail(b, FB_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(b, FB_INTERNAL, "internal error");
  }
}

// Stores a Result<std::string> into *out.
int deliver(fb_bridge* b, const fb::Result<std::string>& r, char** out) {
  if (!r.ok()) return fail(b, r.status());
  *out = dup(*r);
  return *out ? FB_OK : fail(b, FB_INTERNAL, "out of memory");
}

// Stores a webhook route as JSON into *out.
int deliver_route(fb_bridge* b, const fb::Result<fb::WebhookRoute>& r, char** out) {
  if (!r.ok()) return fail(b, r.status());
  return deliver(b, r->to_json(), out);
}

// The optional list filter of fb_sync_jobs / fb_webhook_events: {"integration_id", "status", "limit"}.
struct ListFilter {
  int64_t integration_id = 0;
  std::string status;
  int limit;
  std::string tenant_id;  // "" = every tenant
};

bool parse_filter(fb_bridge* b, const char* filter_json, ListFilter* f, int* rc) {
  if (!filter_json) return true;
  json j = json::parse(filter_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *rc = fail(b, FB_INVALID_ARGUMENT, "filter_json is not a JSON object");
    return false;
  }
  if (j.contains("integration_id") && j["integration_id"].is_number_integer()) f->integration_id = j["integration_id"];
  if (j.contains("status") && j["status"].is_string()) f->status = j["status"];
  if (j.contains("limit") && j["limit"].is_number_integer()) f->limit = j["limit"];
  if (j.contains("tenant_id") && !j["tenant_id"].is_null()) {
    if (!j["tenant_id"].is_string()) {
      *rc = fail(b, FB_INVALID_ARGUMENT, "filter_json.tenant_id must be a string");
      return false;
    }
    f->tenant_id = j["tenant_id"];
  }
  return true;
}

}  // namespace

extern "C" {

const char* fb_version(void) { return "0.1.0"; }

const char* fb_code_name(int code) {
  if (code == FB_MISUSE) return "misuse";
  if (code < 0 || code > FB_CANCELLED) return "unknown";
  return fb::code_name(static_cast<fb::Code>(code));
}

void fb_string_free(char* s) { std::free(s); }

int fb_bridge_open(const char* config_path, const char* config_json, fb_bridge** out) {
  if (!out) return FB_MISUSE;
  auto* b = new (std::nothrow) fb_bridge();
  *out = b;
  if (!b) return FB_INTERNAL;
  try {
    // A host that only connects with API keys needs no OAuth app: the OAuth calls say which
    // setting is missing when they are used (FB_CONFIG), open does not refuse.
    const fb::ConfigRequirements req{.oauth = false};
    fb::Result<fb::Config> config = config_json ? fb::parse_config(config_json, true, req)
                                                : fb::load_config(config_path ? config_path : "", req);
    if (!config.ok()) {
      b->open_code = static_cast<int>(config.code());
      b->open_error = config.status().message();
      return fail(b, config.status());
    }
    auto bridge = fb::Bridge::open(*config);
    if (!bridge.ok()) {
      b->open_code = static_cast<int>(bridge.code());
      b->open_error = bridge.status().message();
      return fail(b, bridge.status());
    }
    b->bridge = std::move(bridge).value();
    return FB_OK;
  } catch (const std::exception& e) {
    b->open_code = FB_INTERNAL;
    b->open_error = e.what();
    return fail(b, FB_INTERNAL, e.what());
  }
}

int fb_bridge_close(fb_bridge* b) {
  if (!b) return FB_OK;
  if (b->closed.exchange(true)) return FB_MISUSE;
  b->crm_queue->cancel();  // library threads waiting for queued CRM answers, and fb_crm_next, return
  b->bridge.reset();
  t_errors.erase(b);
  delete b;
  return FB_OK;
}

const char* fb_errmsg(fb_bridge* b) {
  if (!b) return kMisuse;
  auto it = t_errors.find(b);
  if (it != t_errors.end()) return it->second.c_str();
  if (!b->open_error.empty()) return b->open_error.c_str();
  return "ok";
}

int fb_set_event_callback(fb_bridge* b, fb_event_fn fn, void* user_data) {
  return guarded(b, [&](fb::Bridge& br) {
    if (!fn) {
      br.set_event_sink(nullptr);
      return FB_OK;
    }
    br.set_event_sink([fn, user_data](const fb::Event& e) { fn(user_data, fb::detail::event_json(e).dump().c_str()); });
    return FB_OK;
  });
}

int fb_set_log_callback(fb_bridge* b, fb_log_fn fn, void* user_data) {
  return guarded(b, [&](fb::Bridge&) {
    if (!fn) {
      fb::detail::set_log_sink(nullptr);
      return FB_OK;
    }
    fb::detail::set_log_sink([fn, user_data](fb::detail::LogLevel level, std::string_view component,
                                             std::string_view message) {
      std::string lv = fb::detail::log_level_name(level);
      for (char& c : lv) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string comp(component), msg(message);
      fn(user_data, lv.c_str(), comp.c_str(), msg.c_str());
    });
    return FB_OK;
  });
}

int fb_register_crm_operation(fb_bridge* b, const char* name, fb_crm_fn fn, void* user_data) {
  if (usable(b) && (!name || !fn)) return fail(b, FB_MISUSE, "name and fn are required");
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.register_crm_operation(name, [fn, user_data](const fb::CrmCall& call) -> fb::Result<std::string> {
      std::string call_json = fb::detail::crm_call_json(call);
      char* result = nullptr;
      char* error = nullptr;
      int rc = fn(user_data, call_json.c_str(), &result, &error);
      std::string result_s = result ? result : "";
      std::string error_s = error ? error : "";
      std::free(result);
      std::free(error);
      if (rc != FB_OK) {
        fb::Code code = (rc > 0 && rc <= FB_CANCELLED) ? static_cast<fb::Code>(rc) : fb::Code::kUnavailable;
        if (code == fb::Code::kOk) code = fb::Code::kUnavailable;
        return fb::Status(code, error_s.empty() ? "CRM operation '" + call.operation + "' failed" : error_s);
      }
      return result_s.empty() ? std::string("{}") : result_s;
    });
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_set_crm_batch_callbacks(fb_bridge* b, fb_crm_batch_begin_fn begin, fb_crm_batch_end_fn end,
                               void* user_data) {
  return guarded(b, [&](fb::Bridge& br) {
    auto status_of = [](int rc, const char* what) {
      if (rc == FB_OK) return fb::Status::Ok();
      fb::Code code = (rc > 0 && rc <= FB_CANCELLED) ? static_cast<fb::Code>(rc) : fb::Code::kUnavailable;
      return fb::Status(code, std::string("the host's CRM batch ") + what + " returned " + std::to_string(rc));
    };
    fb::CrmBatchHooks hooks;
    if (begin) {
      hooks.begin = [=](size_t n) { return status_of(begin(user_data, n), "begin"); };
    }
    if (end) {
      hooks.end = [=](bool ok) { return status_of(end(user_data, ok ? 1 : 0), "end"); };
    }
    fb::Status s = br.set_crm_batch_hooks(std::move(hooks));
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_connect_start(fb_bridge* b, const char* tenant_id, const char* user_id, const char* team_id, int popup,
                     char** authorize_url) {
  if (!authorize_url) return fail(b, FB_MISUSE, "authorize_url is required");
  *authorize_url = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    auto r = br.connect_start(caller_of(tenant_id, user_id, team_id),
                              popup ? fb::ReturnMode::kPopup : fb::ReturnMode::kRedirect);
    if (!r.ok()) return fail(b, r.status());
    *authorize_url = dup(r->authorize_url);
    return FB_OK;
  });
}

namespace {

int answer_callback(fb_bridge* b, const fb::CallbackOutcome& o, char** result_json) {
  *result_json = dup(o.to_json());
  return o.ok ? FB_OK : fail(b, static_cast<int>(o.code), o.reason);
}

// fb_connect_callback(_as): the outcome as JSON; with signed_in, only for that CRM user (both ids
// required).
int connect_callback_json(fb_bridge* b, const char* query_string, bool signed_in, const char* tenant_id,
                          const char* user_id, char** result_json) {
  if (!result_json) return fail(b, FB_MISUSE, "result_json is required");
  *result_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    const std::string query = query_string ? query_string : "";
    if (!signed_in) return answer_callback(b, br.connect_callback(query), result_json);
    if (!tenant_id || !*tenant_id || !user_id || !*user_id) {
      return fail(b, FB_INVALID_ARGUMENT, "tenant_id and user_id (the CRM user signed in) are required");
    }
    return answer_callback(b, br.connect_callback(query, caller_of(tenant_id, user_id)), result_json);
  });
}

}  // namespace

int fb_connect_callback(fb_bridge* b, const char* query_string, char** result_json) {
  return connect_callback_json(b, query_string, false, nullptr, nullptr, result_json);
}

int fb_connect_callback_as(fb_bridge* b, const char* query_string, const char* tenant_id, const char* user_id,
                           char** result_json) {
  return connect_callback_json(b, query_string, true, tenant_id, user_id, result_json);
}

int fb_connect_api_key(fb_bridge* b, const char* tenant_id, const char* user_id, const char* api_key,
                       int64_t* integration_id) {
  return guarded(b, [&](fb::Bridge& br) {
    if (!api_key) return fail(b, FB_INVALID_ARGUMENT, "api_key is required");
    auto r = br.connect_api_key(caller_of(tenant_id, user_id), api_key);
    if (!r.ok()) return fail(b, r.status());
    if (integration_id) *integration_id = *r;
    return FB_OK;
  });
}

int fb_disconnect(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id) {
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.disconnect(caller_of(tenant_id, user_id), integration_id);
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_access_token(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id, char** token) {
  if (!token) return fail(b, FB_MISUSE, "token is required");
  *token = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.access_token(caller_of(tenant_id, user_id), integration_id), token);
  });
}

int fb_token_health(fb_bridge* b, const char* tenant_id, const char* user_id, char** report_json) {
  if (!report_json) return fail(b, FB_MISUSE, "report_json is required");
  *report_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.token_health_json(tenant_id ? tenant_id : "", user_id ? user_id : ""), report_json);
  });
}

int fb_deactivate_expired(fb_bridge* b, char** affected_json) {
  if (!affected_json) return fail(b, FB_MISUSE, "affected_json is required");
  *affected_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) { return deliver(b, br.deactivate_expired(), affected_json); });
}

namespace {

// The mode and options_json of fb_sync / fb_sync_start: false (and *rc set) when they are wrong.
bool parse_sync_request(fb_bridge* b, const char* mode, const char* options_json, fb::SyncRequest* req, int* rc) {
  req->mode = mode ? mode : "incremental";
  if (!options_json) return true;
  json o = json::parse(options_json, nullptr, false);
  if (o.is_discarded() || !o.is_object()) {
    *rc = fail(b, FB_INVALID_ARGUMENT, "options_json is not a JSON object");
    return false;
  }
  for (const char* key : {"since", "until"}) {
    if (!o.contains(key)) continue;
    int64_t t = 0;
    if (!o[key].is_string()) {
      *rc = fail(b, FB_INVALID_ARGUMENT, std::string("options.") + key + " must be an ISO 8601 string");
      return false;
    }
    if (!fb::detail::parse_iso8601(o[key].get<std::string>(), &t)) {
      *rc = fail(b, FB_INVALID_ARGUMENT, std::string("options.") + key + " is not an ISO 8601 time");
      return false;
    }
    (std::strcmp(key, "since") == 0 ? req->since : req->until) = t;
  }
  if (o.contains("recording_id")) {
    if (!o["recording_id"].is_number_integer()) {
      *rc = fail(b, FB_INVALID_ARGUMENT, "options.recording_id must be an integer");
      return false;
    }
    req->recording_id = o["recording_id"].get<int64_t>();
  }
  if (o.contains("wait_if_running")) {
    if (!o["wait_if_running"].is_boolean()) {
      *rc = fail(b, FB_INVALID_ARGUMENT, "options.wait_if_running must be true or false");
      return false;
    }
    req->wait_if_running = o["wait_if_running"].get<bool>();
  }
  return true;
}

}  // namespace

int fb_sync(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id, const char* mode,
            const char* options_json, char** job_json) {
  if (!job_json) return fail(b, FB_MISUSE, "job_json is required");
  *job_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    fb::SyncRequest req;
    if (int rc = FB_OK; !parse_sync_request(b, mode, options_json, &req, &rc)) return rc;
    return deliver(b, br.sync(caller_of(tenant_id, user_id), integration_id, req), job_json);
  });
}

int fb_sync_start(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id, const char* mode,
                  const char* options_json, char** job_json) {
  if (!job_json) return fail(b, FB_MISUSE, "job_json is required");
  *job_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    fb::SyncRequest req;
    if (int rc = FB_OK; !parse_sync_request(b, mode, options_json, &req, &rc)) return rc;
    return deliver(b, br.sync_start(caller_of(tenant_id, user_id), integration_id, req), job_json);
  });
}

int fb_sync_job(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t job_id, char** job_json) {
  if (!job_json) return fail(b, FB_MISUSE, "job_json is required");
  *job_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) { return deliver(b, br.sync_job(caller_of(tenant_id, user_id), job_id), job_json); });
}

int fb_sync_cancel(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t job_id) {
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.sync_cancel(caller_of(tenant_id, user_id), job_id);
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_tick(fb_bridge* b) {
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.tick();
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_sync_jobs(fb_bridge* b, const char* filter_json, char** jobs_json) {
  if (!jobs_json) return fail(b, FB_MISUSE, "jobs_json is required");
  *jobs_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    ListFilter f{.limit = 50};
    int rc = FB_OK;
    if (!parse_filter(b, filter_json, &f, &rc)) return rc;
    return deliver(b, br.sync_jobs_json(f.integration_id, f.status, f.limit, f.tenant_id), jobs_json);
  });
}

namespace {
// A delivery's headers as fb_webhook_receive(_async) get them: n name/value pairs, NULL read as "".
std::vector<std::pair<std::string, std::string>> headers_of(const char* const* names, const char* const* values,
                                                            size_t n) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(n);
  for (size_t i = 0; i < n; ++i) headers.emplace_back(names[i] ? names[i] : "", values[i] ? values[i] : "");
  return headers;
}
}  // namespace

int fb_webhook_receive(fb_bridge* b, const char* path, const char* const* header_names,
                       const char* const* header_values, size_t n_headers, const char* body, size_t body_len,
                       int* http_status, char** response_body) {
  if (!http_status || !response_body) return fail(b, FB_MISUSE, "http_status and response_body are required");
  *response_body = nullptr;
  *http_status = 500;
  return guarded(b, [&](fb::Bridge& br) {
    if (n_headers > 0 && (!header_names || !header_values)) return fail(b, FB_MISUSE, "header arrays are NULL");
    std::vector<std::pair<std::string, std::string>> headers = headers_of(header_names, header_values, n_headers);
    fb::WebhookReply r = br.receive_webhook(path ? path : "", headers, std::string_view(body ? body : "", body ? body_len : 0));
    *http_status = r.http_status;
    *response_body = dup(r.body);
    return r.code == fb::Code::kOk ? FB_OK : fail(b, static_cast<int>(r.code), r.body);
  });
}

int fb_webhook_receive_async(fb_bridge* b, const char* path, const char* const* header_names,
                             const char* const* header_values, size_t n_headers, const char* body, size_t body_len,
                             fb_webhook_done_fn done, void* user_data) {
  if (!done) return fail(b, FB_MISUSE, "done is required");
  return guarded(b, [&](fb::Bridge& br) {
    if (n_headers > 0 && (!header_names || !header_values)) return fail(b, FB_MISUSE, "header arrays are NULL");
    std::vector<std::pair<std::string, std::string>> headers = headers_of(header_names, header_values, n_headers);
    br.receive_webhook_async(path ? path : "", std::move(headers), std::string_view(body ? body : "", body ? body_len : 0),
                             [done, user_data](const fb::WebhookReply& r) {
                               done(user_data, static_cast<int>(r.code), r.http_status, r.body.c_str());
                             });
    return FB_OK;
  });
}

int fb_webhook_events(fb_bridge* b, const char* filter_json, char** events_json) {
  if (!events_json) return fail(b, FB_MISUSE, "events_json is required");
  *events_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    ListFilter f{.limit = 100};
    int rc = FB_OK;
    if (!parse_filter(b, filter_json, &f, &rc)) return rc;
    return deliver(b, br.webhook_events_json(f.status, f.integration_id, f.limit, f.tenant_id), events_json);
  });
}

int fb_webhook_replay(fb_bridge* b, const char* event_id, int* count) {
  return guarded(b, [&](fb::Bridge& br) {
    if (!event_id) return fail(b, FB_INVALID_ARGUMENT, "event_id is required");
    auto r = br.webhook_replay(event_id);
    if (!r.ok()) return fail(b, r.status());
    if (count) *count = *r;
    return FB_OK;
  });
}

int fb_scripts_reload(fb_bridge* b) {
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.reload_scripts();
    return s.ok() ? FB_OK : fail(b, s);
  });
}

// ---- webhook routes ----

int fb_webhook_route_add(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id,
                         const char* secret, char** route_json) {
  if (!route_json) return fail(b, FB_MISUSE, "route_json is required");
  *route_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver_route(b, br.add_webhook_route(caller_of(tenant_id, user_id), integration_id, secret ? secret : ""),
                         route_json);
  });
}

int fb_webhook_route_register(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id,
                              char** route_json) {
  if (!route_json) return fail(b, FB_MISUSE, "route_json is required");
  *route_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver_route(b, br.register_webhook_route(caller_of(tenant_id, user_id), integration_id), route_json);
  });
}

int fb_webhook_routes(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t integration_id,
                      char** routes_json) {
  if (!routes_json) return fail(b, FB_MISUSE, "routes_json is required");
  *routes_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    auto r = br.webhook_routes(caller_of(tenant_id, user_id), integration_id);
    if (!r.ok()) return fail(b, r.status());
    json out = json::array();
    for (const auto& w : *r) out.push_back(json::parse(w.to_json()));
    return deliver(b, out.dump(), routes_json);
  });
}

int fb_webhook_route_rotate(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t route_id,
                            const char* secret, char** route_json) {
  if (!route_json) return fail(b, FB_MISUSE, "route_json is required");
  *route_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    if (!secret) return fail(b, FB_INVALID_ARGUMENT, "secret is required");
    return deliver_route(b, br.rotate_webhook_secret(caller_of(tenant_id, user_id), route_id, secret), route_json);
  });
}

int fb_webhook_route_remove(fb_bridge* b, const char* tenant_id, const char* user_id, int64_t route_id) {
  return guarded(b, [&](fb::Bridge& br) {
    fb::Status s = br.remove_webhook_route(caller_of(tenant_id, user_id), route_id);
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_events_read(fb_bridge* b, int64_t after_id, int limit, char** events_json) {
  return fb_events_wait(b, after_id, limit, 0, events_json);
}

int fb_events_wait(fb_bridge* b, int64_t after_id, int limit, int timeout_ms, char** events_json) {
  if (!events_json) return fail(b, FB_MISUSE, "events_json is required");
  *events_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) { return deliver(b, br.events_json(after_id, limit, timeout_ms), events_json); });
}

int fb_register_crm_operation_queued(fb_bridge* b, const char* name) {
  if (usable(b) && !name) return fail(b, FB_MISUSE, "name is required");
  return guarded(b, [&](fb::Bridge& br) {
    std::weak_ptr<fb::detail::CrmQueue> weak = b->crm_queue;
    fb::Status s = br.register_crm_operation(name, [weak](const fb::CrmCall& call) -> fb::Result<std::string> {
      auto q = weak.lock();
      if (!q) return fb::Status::Cancelled("the bridge is closing");
      return q->call(call, fb::detail::crm_call_json(call));
    });
    return s.ok() ? FB_OK : fail(b, s);
  });
}

int fb_crm_next(fb_bridge* b, int timeout_ms, char** call_json) {
  if (!call_json) return fail(b, FB_MISUSE, "call_json is required");
  *call_json = nullptr;
  if (!b || !b->bridge) return fail(b, FB_MISUSE, kMisuse);
  std::shared_ptr<fb::detail::CrmQueue> q = b->crm_queue;  // close() waits for this call to leave next()
  auto r = q->next(timeout_ms);
  return deliver(b, r, call_json);
}

int fb_crm_complete(fb_bridge* b, int64_t call_id, int code, const char* result_json, const char* error_message) {
  if (!b || !b->bridge) return fail(b, FB_MISUSE, kMisuse);
  fb::Result<std::string> answer = std::string(result_json && *result_json ? result_json : "null");
  if (code != FB_OK) {
    fb::Code c = (code > 0 && code <= FB_CANCELLED) ? static_cast<fb::Code>(code) : fb::Code::kUnavailable;
    answer = fb::Status(c, error_message && *error_message ? error_message : "the CRM operation failed");
  }
  fb::Status s = b->crm_queue->complete(call_id, std::move(answer));
  return s.ok() ? FB_OK : fail(b, s);
}

}  // extern "C"

// ---- stored script versions (issue 15) ----

namespace {
std::string text_or_empty(const char* s) { return s ? s : ""; }
}  // namespace

int fb_script_upload(fb_bridge* b, const char* tenant_id, const char* files_json, const char* author, const char* note,
                     char** version_json) {
  if (!version_json || !files_json) return fail(b, FB_MISUSE, "files_json and version_json are required");
  *version_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.script_upload(text_or_empty(tenant_id), files_json, text_or_empty(author), text_or_empty(note)),
                   version_json);
  });
}

int fb_script_import(fb_bridge* b, const char* tenant_id, const char* folder, const char* author, const char* note,
                     char** version_json) {
  if (!version_json || !folder) return fail(b, FB_MISUSE, "folder and version_json are required");
  *version_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.script_import(text_or_empty(tenant_id), folder, text_or_empty(author), text_or_empty(note)),
                   version_json);
  });
}

int fb_script_versions(fb_bridge* b, const char* tenant_id, int limit, char** versions_json) {
  if (!versions_json) return fail(b, FB_MISUSE, "versions_json is required");
  *versions_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.script_versions_json(text_or_empty(tenant_id), limit), versions_json);
  });
}

int fb_script_activate(fb_bridge* b, const char* tenant_id, int64_t version_id, const char* author,
                       char** activation_json) {
  if (!activation_json) return fail(b, FB_MISUSE, "activation_json is required");
  *activation_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.script_activate(text_or_empty(tenant_id), version_id, text_or_empty(author)), activation_json);
  });
}

int fb_script_rollback(fb_bridge* b, const char* tenant_id, const char* author, char** activation_json) {
  if (!activation_json) return fail(b, FB_MISUSE, "activation_json is required");
  *activation_json = nullptr;
  return guarded(b, [&](fb::Bridge& br) {
    return deliver(b, br.script_rollback(text_or_empty(tenant_id), text_or_empty(author)), activation_json);
  });
}
