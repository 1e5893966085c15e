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
#include "browser/webdriver.h"

using nlohmann::json;
using namespace fb::test;

namespace {

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

// Clicks "Connect Fathom" (#connect) on the CRM page at page_url, then decides in the popup.
void click_connect_and_decide(Browser& b, const std::string& page_url, const std::string& sim_base,
                              const std::string& decision) {
  b.go(page_url);
  const std::string main = b.window();
  b.click("#connect");
  decide_in_popup(b, main, sim_base, decision);
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
