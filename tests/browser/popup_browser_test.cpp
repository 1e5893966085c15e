// The OAuth connect flows in a real browser: headless Chromium driven over WebDriver
// (chromedriver), a CRM frontend page on its own origin, fathom-sim's consent page on another, and
// the sidecar's callback page on a third. What only a browser can show: the popup really posts
// its result to the opener's origin through the page's Content-Security-Policy, the opener really
// receives it, the popup closes itself, and the redirect flow really lands on the CRM's page.
//
// Chromium is kept on loopback: every host name resolves to nothing except 127.0.0.1, a dead proxy
// takes anything that is not loopback, and its background services are off.
#define BOOST_TEST_MODULE fb_browser
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "fathom_bridge/bridge.h"
#include "crypto/encoding.h"
#include "server/sidecar.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

// The local addresses of the TCP sockets listening on port, from /proc/net/tcp and tcp6 (hex
// address and port, state 0A), as "a.b.c.d" or a 32-hex-digit IPv6 address.
std::vector<std::string> listening_addresses(int port) {
  std::vector<std::string> out;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream row(line);
      std::string slot, local, remote, state;
      row >> slot >> local >> remote >> state;
      size_t colon = local.find(':');
      if (state != "0A" || colon == std::string::npos || std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      std::string addr = local.substr(0, colon);
      if (addr.size() == 8) {  // IPv4, little-endian hex
        uint32_t v = static_cast<uint32_t>(std::stoul(addr, nullptr, 16));
        addr = std::to_string(v & 0xff) + "." + std::to_string((v >> 8) & 0xff) + "." + std::to_string((v >> 16) & 0xff) +
               "." + std::to_string(v >> 24);
      }
      out.push_back(addr);
    }
  }
  return out;
}

// Every listener of the test is on loopback: 127.0.0.0/8 or ::1 (never 0.0.0.0 or ::).
void expect_loopback_only(int port, const std::string& who) {
  auto addrs = listening_addresses(port);
  BOOST_TEST(!addrs.empty(), who << " listens on port " << port);
  for (const auto& a : addrs) {
    bool loopback = a.rfind("127.", 0) == 0 || a == "00000000000000000000000001000000";
    BOOST_TEST(loopback, who << " listens on " << a << ":" << port << ", which is not loopback");
  }
}

// chromedriver as a child process, and a WebDriver session with headless Chromium.
class Browser {
 public:
  explicit Browser(const std::string& profile_dir) {
    const char* driver = std::getenv("CHROMEDRIVER");
    std::string bin = driver ? driver : "/usr/bin/chromedriver";
    BOOST_REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0,
                          "chromedriver not found at " + bin + " (./run test installs chromium-driver)");
    port_ = free_port();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      std::string port_arg = "--port=" + std::to_string(port_);
      // No --allowed-ips: with it chromedriver listens on every interface and filters peers;
      // without it, it listens on loopback only (checked below).
      execl(bin.c_str(), bin.c_str(), port_arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(60, 0);
    BOOST_REQUIRE_MESSAGE(eventually([&] {
                            auto r = client_->Get("/status");
                            return r && r->status == 200 && json::parse(r->body)["value"]["ready"] == true;
                          }),
                          "chromedriver did not become ready");
    expect_loopback_only(port_, "chromedriver");
    json args = json::array({"--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                             "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
                             "--metrics-recording-only", "--proxy-server=http://127.0.0.1:9",
                             "--proxy-bypass-list=127.0.0.1",
                             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                             "--user-data-dir=" + profile_dir, "--window-size=1024,768"});
    json chrome = {{"args", args}};
    if (const char* b = std::getenv("CHROMIUM")) chrome["binary"] = b;
    json caps = {{"capabilities", {{"alwaysMatch", {{"browserName", "chrome"}, {"goog:chromeOptions", chrome}}}}}};
    json r = call("POST", "/session", caps);
    session_ = r["value"]["sessionId"];
    BOOST_REQUIRE_MESSAGE(!session_.empty(), "no WebDriver session: " + r.dump());
  }
  ~Browser() {
    if (!session_.empty()) call("DELETE", "/session/" + session_, nullptr, false);
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

  json call(const std::string& method, const std::string& path, const json& body = nullptr, bool check = true) {
    httplib::Result r = method == "GET"      ? client_->Get(path)
                        : method == "DELETE" ? client_->Delete(path)
                                             : client_->Post(path, body.is_null() ? "{}" : body.dump(), "application/json");
    if (!r) {
      if (check) BOOST_FAIL("WebDriver " + method + " " + path + ": no answer");
      return json();
    }
    json j = json::parse(r->body, nullptr, false);
    if (check && (r->status != 200 || j.is_discarded())) {
      BOOST_FAIL("WebDriver " + method + " " + path + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 400));
    }
    return j;
  }
  json session(const std::string& method, const std::string& path, const json& body = nullptr) {
    return call(method, "/session/" + session_ + path, body);
  }
  void go(const std::string& url) { session("POST", "/url", {{"url", url}}); }
  std::string url() { return session("GET", "/url")["value"]; }
  json script(const std::string& js) { return session("POST", "/execute/sync", {{"script", js}, {"args", json::array()}})["value"]; }
  std::string element(const std::string& css) {
    json v = session("POST", "/element", {{"using", "css selector"}, {"value", css}})["value"];
    return v.begin().value();  // {"element-6066-...": id}
  }
  void click(const std::string& css) { session("POST", "/element/" + element(css) + "/click", json::object()); }
  std::vector<std::string> windows() { return session("GET", "/window/handles")["value"].get<std::vector<std::string>>(); }
  std::string window() { return session("GET", "/window")["value"]; }
  void switch_to(const std::string& handle) { session("POST", "/window", {{"handle", handle}}); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
  std::string session_;
};

// The CRM's frontend, on an origin of its own: a settings page with a "Connect Fathom" button that
// opens the popup at once (inside the click, as popup blockers require), asks its backend for the
// authorize URL, and waits for the callback page's message.
class Frontend {
 public:
  // The port is chosen first: the bridge is configured with this origin before it opens.
  Frontend(int port, fb::Bridge& bridge, const std::string& bridge_origin, fb::ReturnMode mode) : bridge_(bridge) {
    port_ = port;
    origin_ = "http://127.0.0.1:" + std::to_string(port_);
    std::string page = R"(<!doctype html><html><head><meta charset="utf-8"><title>CRM settings</title></head>
<body><h1>Integrations</h1><button id="connect">Connect Fathom</button><p id="status">idle</p>
<script>
window.__result = null;
window.addEventListener('message', function (e) {
  if (e.origin !== BRIDGE_ORIGIN || !e.data || e.data.source !== 'fathom-bridge') return;
  window.__result = {origin: e.origin, data: e.data};
  document.getElementById('status').textContent = e.data.status;
});
document.getElementById('connect').addEventListener('click', function () {
  var w = window.open('about:blank', 'fathom-connect', 'width=600,height=700');
  window.__popup = w;
  fetch('/api/fathom/start', {method: 'POST'}).then(function (r) { return r.json(); })
    .then(function (j) { w.location = j.authorize_url; });
});
</script></body></html>)";
    std::string needle = "BRIDGE_ORIGIN";
    page.replace(page.find(needle), needle.size(), "'" + bridge_origin + "'");
    server_.Get("/settings", [page](const httplib::Request&, httplib::Response& res) { res.set_content(page, "text/html"); });
    server_.Get("/settings/integrations/fathom", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("<!doctype html><title>back</title><p id=\"q\">" + req.get_param_value("fathom") + "</p>", "text/html");
    });
    mode_ = mode;
    server_.Post("/api/fathom/start", [this](const httplib::Request&, httplib::Response& res) {
      auto r = bridge_.connect_start({"acme", "u-browser", ""}, mode_);
      if (!r.ok()) {
        res.status = 500;
        return;
      }
      res.set_content(json{{"authorize_url", r->authorize_url}}.dump(), "application/json");
    });
    BOOST_REQUIRE(server_.bind_to_port("127.0.0.1", port_));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    BOOST_REQUIRE(eventually([&] { return server_.is_running(); }));
  }
  ~Frontend() {
    server_.stop();
    thread_.join();
  }
  const std::string& origin() const { return origin_; }

 private:
  fb::Bridge& bridge_;
  fb::ReturnMode mode_ = fb::ReturnMode::kPopup;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string origin_;
};

struct World {
  World()
      : sidecar_port(free_port()),
        frontend_port(free_port()),
        bridge_origin("http://127.0.0.1:" + std::to_string(sidecar_port)),
        frontend_origin("http://127.0.0.1:" + std::to_string(frontend_port)),
        sim({"--meetings", "3", "--seed", "5", "--redirect-uri", bridge_origin + "/oauth/callback"}) {
    json cfg = {{"fathom",
                 {{"client_id", "sim-client"},
                  {"client_secret", "sim-secret"},
                  {"redirect_uri", bridge_origin + "/oauth/callback"},
                  {"authorize_url", sim.authorize_url()},
                  {"token_url", sim.token_url()},
                  {"api_base", sim.api_base()}}},
                {"frontend", {{"url", frontend_origin}}},
                {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'b'))}}},
                {"store", {{"path", dir.file("bridge.db")}}},
                {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
                {"sync", {{"scheduler", false}}}};
    auto config = fb::parse_config(cfg.dump(), false);
    BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    auto opened = fb::Bridge::open(*config);
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    bridge = std::move(*opened);
    auto sc = fb::detail::Sidecar::start(*bridge, sidecar_port);
    BOOST_REQUIRE_MESSAGE(sc.ok(), sc.status().to_string());
    sidecar = std::move(*sc);
    expect_loopback_only(sidecar_port, "the sidecar");
    expect_loopback_only(sim.port(), "fathom-sim");
  }
  // The integrations of the browser's user, as the token health report lists them.
  json integrations() {
    auto r = bridge->token_health_json("acme", "u-browser");
    BOOST_REQUIRE(r.ok());
    return json::parse(*r);
  }

  int sidecar_port;
  int frontend_port;
  std::string bridge_origin;
  std::string frontend_origin;
  SimProcess sim;
  TempDir dir;
  std::unique_ptr<fb::Bridge> bridge;
  std::unique_ptr<fb::detail::Sidecar> sidecar;
};

// Clicks "Connect Fathom" (#connect) on the CRM page at page_url, decides on Fathom's consent page
// (at sim_base) in the popup, waits for the popup to close itself and switches back to the page.
void click_connect_and_decide(Browser& b, const std::string& page_url, const std::string& sim_base,
                              const std::string& decision) {
  b.go(page_url);
  const std::string main = b.window();
  b.click("#connect");
  std::string popup;
  BOOST_REQUIRE_MESSAGE(eventually([&] {
                          for (const auto& h : b.windows()) {
                            if (h != main) popup = h;
                          }
                          return !popup.empty();
                        }),
                        "no popup window opened");
  b.switch_to(popup);
  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.url().rfind(sim_base, 0) == 0; }),
                        "the popup never reached Fathom's consent page: " + b.url());
  BOOST_REQUIRE(eventually([&] { return b.script("return document.querySelector('button." + decision + "') !== null") == true; }));
  b.click("button." + decision);
  // The callback page posts to the opener, then closes itself.
  BOOST_TEST_MESSAGE("waiting for the popup to close");
  bool closed = eventually([&] { return b.windows().size() == 1; });
  BOOST_TEST(closed, "the popup closed itself after posting its result");
  b.switch_to(main);
}

// The same on the test's own CRM page; returns what it received (null when nothing came).
json connect_in_popup(Browser& b, World& w, const std::string& decision) {
  click_connect_and_decide(b, w.frontend_origin + "/settings", w.sim.base_url(), decision);
  json result;
  eventually([&] {
    result = b.script("return window.__result");
    return !result.is_null();
  });
  return result;
}

}  // namespace

BOOST_AUTO_TEST_CASE(popup_approve_and_deny_reach_the_opener) {
  World w;
  Frontend front(w.frontend_port, *w.bridge, w.bridge_origin, fb::ReturnMode::kPopup);
  TempDir profile;
  Browser b(profile.path());

  json ok = connect_in_popup(b, w, "approve");
  BOOST_REQUIRE_MESSAGE(!ok.is_null(), "the CRM page never received the callback page's message");
  BOOST_TEST(ok["origin"] == w.bridge_origin);  // the message came from the bridge's callback page
  BOOST_TEST(ok["data"]["status"] == "connected");
  BOOST_TEST(ok["data"]["integration_id"].is_number_integer());  // the documented contract (fathom_bridge.h)
  BOOST_TEST(b.script("return document.getElementById('status').textContent") == "connected");
  json rows = w.integrations();
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(rows[0]["status"] == "valid");
  BOOST_TEST(ok["data"]["integration_id"] == rows[0]["integration_id"]);

  json denied = connect_in_popup(b, w, "deny");
  BOOST_REQUIRE_MESSAGE(!denied.is_null(), "the CRM page never received the denial");
  BOOST_TEST(denied["data"]["status"] == "error");
  BOOST_TEST(denied["data"]["error"] == "access_denied");
  BOOST_TEST(w.integrations().size() == 1u);  // nothing stored for the denial
}

BOOST_AUTO_TEST_CASE(redirect_flow_lands_on_the_crm_page) {
  World w;
  Frontend front(w.frontend_port, *w.bridge, w.bridge_origin, fb::ReturnMode::kRedirect);
  TempDir profile;
  Browser b(profile.path());
  auto start = w.bridge->connect_start({"acme", "u-browser", ""}, fb::ReturnMode::kRedirect);
  BOOST_REQUIRE(start.ok());
  b.go(start->authorize_url);
  BOOST_REQUIRE(eventually([&] { return b.script("return document.querySelector('button.approve') !== null") == true; }));
  b.click("button.approve");
  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.url().rfind(w.frontend_origin + "/settings/integrations/fathom", 0) == 0; }),
                        "the browser did not land on the CRM page: " + b.url());
  BOOST_TEST(b.url().find("fathom=connected") != std::string::npos);
  BOOST_TEST(b.script("return document.getElementById('q').textContent") == "connected");
  json rows = w.integrations();
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(rows[0]["status"] == "valid");
}

// Issue 10 point 19: the demo CRM's own page (examples/demo-crm), a host of the C ABI, as a user
// sees it: "Connect Fathom", approve in the popup, and the page says it is connected (it used to
// listen for another status than the callback page posts, and said "failed" on every success).
BOOST_AUTO_TEST_CASE(the_demo_crm_page_reports_the_popup_connection) {
  const int port = free_port();
  const std::string crm = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim({"--meetings", "3", "--seed", "5", "--redirect-uri", crm + "/oauth/callback"});
  TempDir data;
  pid_t demo = fork();
  if (demo == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::string bin = std::string(FB_BINARY_DIR) + "/examples/demo-crm/demo-crm";
    std::string scripts = std::string(FB_SOURCE_DIR) + "/scripts";
    execl(bin.c_str(), bin.c_str(), "--sim", sim.base_url().c_str(), "--data", data.path().c_str(), "--port",
          std::to_string(port).c_str(), "--scripts", scripts.c_str(), "--serve", static_cast<char*>(nullptr));
    _exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reap{demo};
  httplib::Client probe("127.0.0.1", port);
  BOOST_REQUIRE_MESSAGE(eventually([&] { return static_cast<bool>(probe.Get("/api/crm")); }), "demo-crm did not start");
  expect_loopback_only(port, "demo-crm");

  TempDir profile;
  Browser b(profile.path());
  auto message = [&] { return b.script("return document.getElementById('msg').textContent").get<std::string>(); };
  click_connect_and_decide(b, crm + "/", sim.base_url(), "approve");
  BOOST_TEST(eventually([&] { return message().rfind("Fathom connected", 0) == 0; }), "the page says: " << message());
  BOOST_TEST(message().find("integration 1") != std::string::npos);
  BOOST_TEST(b.script("return document.getElementById('health').textContent").get<std::string>().find("\"valid\"") !=
             std::string::npos);

  click_connect_and_decide(b, crm + "/", sim.base_url(), "deny");
  BOOST_TEST(eventually([&] { return message() == "Fathom connection failed: access_denied"; }),
             "the page says: " << message());
}
