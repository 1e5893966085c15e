// e2e_host: system (a) of bench/e2e. A CRM that embeds fathom-bridge through the C ABI only
// (fathom_bridge.h): its CRM operations upsert into its own SQLite tables (crm_tables.h), and the
// batch callbacks make each batch's CRM writes one CRM transaction.
//
//   e2e_host webhooks --config FILE --crm-db FILE --schema FILE --api-key KEY --secret whsec_...
//       Serves webhook deliveries and hands each to the bridge: by default one epoll thread and
//       fb_webhook_receive_async (webhook_loop.h); with --http threads, cpp-httplib with a thread
//       per connection, each blocked in fb_webhook_receive (the host of the earlier figures).
//       First stdout line: "listening <port> <route path>". Stops on SIGTERM.
//   e2e_host sync --config FILE --crm-db FILE --schema FILE --api-key KEY [--api-key KEY...]
//       Connects each API key and runs one backfill each through the real mapping, then prints
//       one JSON line: {"meetings", "wall_s", "cpu_s", "jobs": [...]}.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "crm_tables.h"
#include "serve.h"
#include "webhook_loop.h"
#include "fathom_bridge/fathom_bridge.h"

namespace {

std::string arg(int argc, char** argv, const char* name, const char* fallback = "") {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

std::vector<std::string> args(int argc, char** argv, const char* name) {
  std::vector<std::string> out;
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) out.push_back(argv[i + 1]);
  }
  return out;
}

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

e2e::CrmTables* g_crm = nullptr;

int on_crm(void* op, const char* call_json, char** result_json, char** error_message) {
  std::string out;
  if (g_crm->call(static_cast<const char*>(op), e2e::args_of(call_json), &out)) {
    *result_json = dup(out);
    return FB_OK;
  }
  *error_message = dup(out);
  return FB_UNAVAILABLE;
}

int on_begin(void*, size_t) { return g_crm->begin_batch() ? FB_OK : FB_UNAVAILABLE; }
int on_end(void*, int ok) { return g_crm->end_batch(ok != 0) ? FB_OK : FB_UNAVAILABLE; }

const char* kOps[] = {"find_company_by_domain", "upsert_company", "find_contact_by_email", "upsert_contact",
                      "log_activity",           "create_task",    "find_deal",             "create_deal",
                      "attach_recording"};

double cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The integration id from fb_connect_api_key for key (tenant "bench", user "u<index>").
int64_t connect(fb_bridge* b, const std::string& user, const std::string& key) {
  int64_t id = 0;
  if (fb_connect_api_key(b, "bench", user.c_str(), key.c_str(), &id) != FB_OK) {
    std::cerr << "e2e_host: connect: " << fb_errmsg(b) << "\n";
    std::exit(1);
  }
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: e2e_host webhooks|sync --config FILE --crm-db FILE --schema FILE --api-key KEY ...\n";
    return 2;
  }
  std::string mode = argv[1];
  sigset_t stop_signals = e2e::block_stop_signals();  // before fb_bridge_open starts its threads
  e2e::CrmTables crm(arg(argc, argv, "--crm-db"), arg(argc, argv, "--schema"));
  g_crm = &crm;
  std::string config = arg(argc, argv, "--config");
  fb_bridge* b = nullptr;
  if (fb_bridge_open(config.c_str(), nullptr, &b) != FB_OK) {
    std::cerr << "e2e_host: open: " << fb_errmsg(b) << "\n";
    return 1;
  }
  for (const char* op : kOps) fb_register_crm_operation(b, op, on_crm, const_cast<char*>(op));
  fb_set_crm_batch_callbacks(b, on_begin, on_end, nullptr);
  std::vector<std::string> keys = args(argc, argv, "--api-key");

  if (mode == "sync") {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < keys.size(); ++i) ids.push_back(connect(b, "u" + std::to_string(i), keys[i]));
    double c0 = cpu_s();
    auto t0 = std::chrono::steady_clock::now();
    std::string jobs = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      char* job = nullptr;
      std::string user = "u" + std::to_string(i);
      if (fb_sync(b, "bench", user.c_str(), ids[i], "backfill", nullptr, &job) != FB_OK) {
        std::cerr << "e2e_host: sync: " << fb_errmsg(b) << "\n";
        return 1;
      }
      jobs += (i ? "," : "") + std::string(job);
      fb_string_free(job);
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"wall_s\": %.3f, \"cpu_s\": %.3f, \"jobs\": %s]}\n", wall, cpu_s() - c0, jobs.c_str());
    fb_bridge_close(b);
    return 0;
  }

  int64_t id = connect(b, "u0", keys.empty() ? "" : keys[0]);
  char* route = nullptr;
  if (fb_webhook_route_add(b, "bench", "u0", id, arg(argc, argv, "--secret").c_str(), &route) != FB_OK) {
    std::cerr << "e2e_host: route: " << fb_errmsg(b) << "\n";
    return 1;
  }
  std::string r = route;
  fb_string_free(route);
  size_t at = r.find("\"path\":\"");
  std::string path = r.substr(at + 8, r.find('"', at + 8) - at - 8);

  if (arg(argc, argv, "--http", "loop") == "loop") {
    int rc = e2e::WebhookLoop(b, path).run(stop_signals, " " + path);
    fb_bridge_close(b);
    return rc;
  }
  httplib::Server svr;
  svr.Post(path, [b](const httplib::Request& req, httplib::Response& res) {
    std::vector<const char*> names, values;
    for (const auto& [k, v] : req.headers) {
      names.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    int status = 500;
    char* body = nullptr;
    fb_webhook_receive(b, req.path.c_str(), names.data(), values.data(), names.size(), req.body.data(),
                       req.body.size(), &status, &body);
    res.status = status;
    if (body) res.set_content(body, "text/plain");
    fb_string_free(body);
  });
  e2e::serve(svr, stop_signals, 64, " " + path);  // a thread for each of wrk's keep-alive connections
  fb_bridge_close(b);
  return 0;
}
