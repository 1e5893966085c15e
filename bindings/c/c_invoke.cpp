// fb_invoke: every C ABI operation by name with JSON arguments, answering with one JSON document
// that carries either the result or the error's code name and message.
//
// For bindings whose calls hop threads (Node's koffi runs each .async call on some thread of
// libuv's pool): fb_errmsg is per thread, so a message read after the call returned would be
// another thread's. Here the operation and fb_errmsg run on the same thread, in one C call.
// It is built only from the public functions of fathom_bridge.h.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "fathom_bridge/fathom_bridge.h"

namespace {

using nlohmann::json;

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

// The argument accessors: a missing key is NULL / 0; a key of the wrong type is refused.
struct Args {
  const json& j;
  std::string error;
  std::string strings[4];
  int used = 0;

  const char* str(const char* key) {
    if (!j.contains(key) || j[key].is_null()) return nullptr;
    if (!j[key].is_string()) {
      if (error.empty()) error = std::string("argument '") + key + "' must be a string";
      return nullptr;
    }
    strings[used] = j[key].get<std::string>();
    return strings[used++].c_str();
  }
  int64_t num(const char* key, int64_t fallback = 0) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (j[key].is_boolean()) return j[key].get<bool>() ? 1 : 0;
    if (!j[key].is_number_integer()) {
      if (error.empty()) error = std::string("argument '") + key + "' must be an integer";
      return fallback;
    }
    return j[key].get<int64_t>();
  }
  std::string doc(const char* key) { return j.contains(key) && !j[key].is_null() ? j[key].dump() : ""; }
};

// One operation: returns the fb_* code and sets *text to a JSON document on success.
using Op = std::function<int(fb_bridge*, Args&, std::string*)>;

// Takes a char * the library returned.
std::string take(char* s) {
  std::string out = s ? s : "";
  fb_string_free(s);
  return out;
}

// fb_sync and fb_sync_start take the same arguments: {tenant_id, user_id, integration_id, mode,
// since, until, recording_id}.
using SyncFn = int (*)(fb_bridge*, const char*, const char*, int64_t, const char*, const char*, char**);
int invoke_sync(fb_bridge* b, Args& a, std::string* t, SyncFn fn) {
  char* out = nullptr;
  json options = json::object();
  for (const char* k : {"since", "until", "recording_id"}) {
    if (a.j.contains(k) && !a.j[k].is_null()) options[k] = a.j[k];
  }
  const std::string opts = options.empty() ? "" : options.dump();
  const char* tenant = a.str("tenant_id");
  const char* user = a.str("user_id");
  const char* mode = a.str("mode");
  int rc = fn(b, tenant, user, a.num("integration_id"), mode ? mode : "incremental", opts.empty() ? nullptr : opts.c_str(),
              &out);
  *t = take(out);
  return rc;
}

const std::map<std::string, Op>& operations() {
  static const std::map<std::string, Op> ops = {
      {"connect_start",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* url = nullptr;
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         const char* team = a.str("team_id");
         int rc = fb_connect_start(b, tenant, user, team, static_cast<int>(a.num("popup", 1)), &url);
         *t = json{{"authorize_url", take(url)}}.dump();
         return rc;
       }},
      {"connect_callback",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         // With tenant_id or user_id present (even null): the CRM user signed in where the callback
         // arrived, both required; a missing one fails closed rather than skipping the check.
         const bool signed_in = a.j.contains("tenant_id") || a.j.contains("user_id");
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         int rc = signed_in ? fb_connect_callback_as(b, a.str("query"), tenant, user, &out)
                            : fb_connect_callback(b, a.str("query"), &out);
         *t = take(out);
         return rc;
       }},
      {"connect_api_key",
       [](fb_bridge* b, Args& a, std::string* t) {
         int64_t id = 0;
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         int rc = fb_connect_api_key(b, tenant, user, a.str("api_key"), &id);
         *t = json{{"integration_id", id}}.dump();
         return rc;
       }},
      {"disconnect",
       [](fb_bridge* b, Args& a, std::string* t) {
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         *t = "{}";
         return fb_disconnect(b, tenant, user, a.num("integration_id"));
       }},
      {"access_token",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* token = nullptr;
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         int rc = fb_access_token(b, tenant, user, a.num("integration_id"), &token);
         *t = json{{"access_token", take(token)}}.dump();
         return rc;
       }},
      {"token_health",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         const char* tenant = a.str("tenant_id");
         int rc = fb_token_health(b, tenant, a.str("user_id"), &out);
         *t = take(out);
         return rc;
       }},
      {"deactivate_expired",
       [](fb_bridge* b, Args&, std::string* t) {
         char* out = nullptr;
         int rc = fb_deactivate_expired(b, &out);
         *t = take(out);
         return rc;
       }},
      {"sync", [](fb_bridge* b, Args& a, std::string* t) { return invoke_sync(b, a, t, fb_sync); }},
      {"sync_start", [](fb_bridge* b, Args& a, std::string* t) { return invoke_sync(b, a, t, fb_sync_start); }},
      {"sync_job",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         int rc = fb_sync_job(b, tenant, user, a.num("job_id"), &out);
         *t = take(out);
         return rc;
       }},
      {"sync_cancel",
       [](fb_bridge* b, Args& a, std::string* t) {
         const char* tenant = a.str("tenant_id");
         const char* user = a.str("user_id");
         const int64_t job = a.num("job_id");
         int rc = fb_sync_cancel(b, tenant, user, job);
         *t = json{{"job_id", job}, {"cancel_requested", rc == FB_OK}}.dump();
         return rc;
       }},
      {"tick",
       [](fb_bridge* b, Args&, std::string* t) {
         *t = "{}";
         return fb_tick(b);
       }},
      {"sync_jobs",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         std::string filter = a.doc("filter");
         int rc = fb_sync_jobs(b, filter.empty() ? nullptr : filter.c_str(), &out);
         *t = take(out);
         return rc;
       }},
      {"webhook_events",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         std::string filter = a.doc("filter");
         int rc = fb_webhook_events(b, filter.empty() ? nullptr : filter.c_str(), &out);
         *t = take(out);
         return rc;
       }},
      {"webhook_replay",
       [](fb_bridge* b, Args& a, std::string* t) {
         int count = 0;
         int rc = fb_webhook_replay(b, a.str("event_id"), &count);
         *t = json{{"count", count}}.dump();
         return rc;
       }},
      {"scripts_reload",
       [](fb_bridge* b, Args&, std::string* t) {
         *t = "{}";
         return fb_scripts_reload(b);
       }},
      {"events_read",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         int rc = fb_events_wait(b, a.num("after"), static_cast<int>(a.num("limit", 100)),
                                 static_cast<int>(a.num("wait_ms", 0)), &out);
         *t = take(out);
         return rc;
       }},
      // Stored script versions (issue 15).
      {"script_upload",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         std::string files = a.doc("files");
         int rc = fb_script_upload(b, a.str("tenant_id"), files.empty() ? nullptr : files.c_str(), a.str("author"),
                                   a.str("note"), &out);
         *t = take(out);
         return rc;
       }},
      {"script_import",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         int rc = fb_script_import(b, a.str("tenant_id"), a.str("folder"), a.str("author"), a.str("note"), &out);
         *t = take(out);
         return rc;
       }},
      {"script_versions",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         int rc = fb_script_versions(b, a.str("tenant_id"), static_cast<int>(a.num("limit", 50)), &out);
         *t = take(out);
         return rc;
       }},
      {"script_activate",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         int rc = fb_script_activate(b, a.str("tenant_id"), a.num("version_id"), a.str("author"), &out);
         *t = take(out);
         return rc;
       }},
      {"script_rollback",
       [](fb_bridge* b, Args& a, std::string* t) {
         char* out = nullptr;
         int rc = fb_script_rollback(b, a.str("tenant_id"), a.str("author"), &out);
         *t = take(out);
         return rc;
       }},
  };
  return ops;
}

std::string error_doc(int code, const std::string& message) {
  return json{{"error", fb_code_name(code)}, {"code", code}, {"message", message}}.dump();
}

}  // namespace

extern "C" int fb_invoke(fb_bridge* b, const char* operation, const char* args_json, char** result_json) {
  if (!result_json) return FB_MISUSE;
  *result_json = nullptr;
  int rc = FB_OK;
  std::string text;
  try {
    json args = json::parse(args_json ? args_json : "{}", nullptr, false);
    auto it = operation ? operations().find(operation) : operations().end();
    if (!b) {
      rc = FB_MISUSE;
      text = error_doc(rc, "misuse: NULL handle");
    } else if (it == operations().end()) {
      rc = FB_INVALID_ARGUMENT;
      text = error_doc(rc, std::string("unknown operation '") + (operation ? operation : "(null)") + "'");
    } else if (args.is_discarded() || !args.is_object()) {
      rc = FB_INVALID_ARGUMENT;
      text = error_doc(rc, "args_json is not a JSON object");
    } else {
      Args a{args, {}, {}, 0};
      std::string result;
      rc = it->second(b, a, &result);
      if (!a.error.empty()) {
        rc = FB_INVALID_ARGUMENT;
        text = error_doc(rc, a.error);
      } else if (rc != FB_OK && operation != std::string("connect_callback")) {
        text = error_doc(rc, fb_errmsg(b));  // same thread: this call's message
      } else if (rc != FB_OK) {
        // The refused callback's outcome is the page to serve; the message goes beside it.
        json outcome = json::parse(result.empty() ? "{}" : result, nullptr, false);
        if (outcome.is_discarded() || !outcome.is_object()) outcome = json::object();
        outcome["error_message"] = fb_errmsg(b);
        text = outcome.dump();
      } else {
        text = result.empty() ? "null" : result;
      }
    }
  } catch (const std::exception& e) {
    rc = FB_INTERNAL;
    text = error_doc(rc, std::string("internal error: ") + e.what());
  }
  *result_json = dup(text);
  return *result_json ? rc : FB_INTERNAL;
}
