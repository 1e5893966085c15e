// The connect widget (widget/fathom-connect.js) in a real browser, headless Chromium over
// WebDriver, as a user drives it:
// - on the demo CRM's Integrations page (examples/demo-crm, a C ABI host): Connect, approve in
//   Fathom's popup (fathom-sim), connected; Sync now, the meetings appear as activities; the grant
//   is revoked inside Fathom, "Reconnect required"; Reconnect, connected again.
// - on a CRM page of its own origin talking to the real sidecar's user routes with the CRM's JWT
//   (CORS preflights included) while Chromium refuses every new window: the widget falls back to
//   the redirect flow and the page ends connected.
// Screenshots of each step go to <build>/test-artifacts/browser/<test>/ (printed as they are saved).
#include <httplib.h>
#include <jwt.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "browser/webdriver.h"
#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

std::string artifacts(const std::string& test) { return std::string(FB_BINARY_DIR) + "/test-artifacts/browser/" + test + "/"; }

// What the widget's live status line says (its role=status element, inside its shadow root).
std::string widget_status(Browser& b) {
  json v = b.script(
      "const w = document.querySelector('fathom-connect');"
      "const s = w && w.shadowRoot && w.shadowRoot.querySelector('[role=status]');"
      "return s ? s.textContent : '';");
  return v.is_string() ? v.get<std::string>() : "";
}

// The widget's message line (progress and errors), "" when it shows none.
std::string widget_message(Browser& b) {
  json v = b.script(
      "const w = document.querySelector('fathom-connect');"
      "const m = w && w.shadowRoot && w.shadowRoot.querySelector('.message');"
      "return m ? m.textContent : '';");
  return v.is_string() ? v.get<std::string>() : "";
}

bool widget_says(Browser& b, const std::string& prefix) {
  return eventually([&] { return widget_status(b).rfind(prefix, 0) == 0; });
}

// Clicks the widget's button for action (connect, reconnect) as a user, then approves in the popup.
void click_and_approve_in_popup(Browser& b, const std::string& action, const std::string& sim_base) {
  const std::string main = b.window();
  b.shadow_click("fathom-connect", "button[data-action=" + action + "]");
  decide_in_popup(b, main, sim_base, "approve");
}

// How the widget's last connect ended: "message", "poll" or "redirect" (its view.outcome).
std::string outcome(Browser& b) {
  json v = b.script("return document.querySelector('fathom-connect').view.outcome");
  return v.is_string() ? v.get<std::string>() : "";
}

int count(Browser& b, const std::string& css) {
  return b.script("return document.querySelectorAll('" + css + "').length").get<int>();
}

// The demo CRM (examples/demo-crm) as a child process serving its pages.
struct DemoCrm {
  int port = free_port();
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim{{"--meetings", "5", "--seed", "11", "--redirect-uri", base + "/oauth/callback"}};
  TempDir data;
  pid_t pid = -1;

  DemoCrm() {
    pid = fork();
    if (pid == 0) {
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
    httplib::Client probe("127.0.0.1", port);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return static_cast<bool>(probe.Get("/api/crm")); }), "demo-crm did not start");
    expect_loopback_only(port, "demo-crm");
  }
  ~DemoCrm() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(widget)

BOOST_AUTO_TEST_CASE(demo_crm_connect_sync_revoke_and_reconnect) {
  DemoCrm crm;
  const std::string shots = artifacts("demo_crm_connect_sync_revoke_and_reconnect");
  TempDir profile;
  Browser b(profile.path());

  b.go(crm.base + "/integrations");
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Not connected"), "the widget says: " << widget_status(b));
  // Accessible: a real button, a polite live status.
  BOOST_TEST(b.script("const r = document.querySelector('fathom-connect').shadowRoot;"
                      "const s = r.querySelector('[role=status]');"
                      "return r.querySelector('[data-action=connect]').tagName === 'BUTTON' && s.getAttribute('aria-live') === 'polite'") == true);
  BOOST_TEST(count(b, "#activities tbody tr") == 0);
  // Themable: a CSS custom property on the element reaches the button inside its shadow root.
  BOOST_TEST(b.script("const w = document.querySelector('fathom-connect');"
                      "w.style.setProperty('--fathom-accent', 'rgb(1, 2, 3)');"
                      "const c = getComputedStyle(w.shadowRoot.querySelector('[data-action=connect]')).backgroundColor;"
                      "w.style.removeProperty('--fathom-accent');"
                      "return c") == "rgb(1, 2, 3)");
  b.screenshot(shots + "01-not-connected.png");

  click_and_approve_in_popup(b, "connect", crm.sim.base_url());
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Connected"), "the widget says: " << widget_status(b));
  BOOST_TEST(outcome(b) == "message");  // it believed the callback page's message (exact origin), no polling
  BOOST_TEST(eventually([&] { return count(b, "#connections [data-status=valid]") == 1; }), "the connection's badge says valid");
  b.screenshot(shots + "02-connected.png");

  b.shadow_click("fathom-connect", "button[data-action=sync]");
  BOOST_REQUIRE_MESSAGE(eventually([&] { return count(b, "#activities tbody tr") > 0; }), "no activities after Sync now");
  BOOST_TEST(count(b, "#activities tbody tr a[href]") > 0);  // each meeting's recording link
  // The first page's activities can show while later pages are still syncing: the widget says so
  // until the job ends.
  BOOST_TEST(eventually([&] { return widget_message(b).rfind("Sync finished", 0) == 0; }),
             "the widget says: " << widget_message(b));
  // Keyboard focus came back to Sync now after the buttons were redrawn (disabled while busy).
  BOOST_TEST(eventually([&] {
    return b.script("const r = document.querySelector('fathom-connect').shadowRoot;"
                    "return !!r.activeElement && r.activeElement.dataset.action === 'sync'") == true;
  }), "focus stayed on the widget's Sync now button");
  b.screenshot(shots + "03-synced.png");

  // The user revokes the app inside Fathom; the next call finds out.
  json users = crm.sim.users();
  if (users.is_object() && users.contains("users")) users = users["users"];
  BOOST_REQUIRE(users.is_array() && !users.empty());
  const std::string email = users[0]["email"];  // the consent page's preselected account
  crm.sim.admin("POST", "/_sim/grants/revoke", {{"user", email}});
  crm.sim.admin("POST", "/_sim/tokens/expire", {{"user", email}});
  b.shadow_click("fathom-connect", "button[data-action=sync]");
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Reconnect required"), "the widget says: " << widget_status(b));
  BOOST_TEST(eventually([&] { return count(b, "#connections [data-status=reconnect_required]") == 1; }),
             "the connection's badge says reconnect required");
  b.screenshot(shots + "04-reconnect-required.png");

  click_and_approve_in_popup(b, "reconnect", crm.sim.base_url());
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Connected"), "the widget says: " << widget_status(b));
  BOOST_TEST(outcome(b) == "message");
  b.screenshot(shots + "05-reconnected.png");

  // The records pages are tables, newest first.
  b.go(crm.base + "/activities");
  BOOST_TEST(count(b, "table#activities tbody tr") > 0);
  BOOST_TEST(b.script("const d = [...document.querySelectorAll('#activities tbody tr td:nth-child(2)')].map(t => t.textContent);"
                      "return d.every((v, i) => i === 0 || d[i - 1] >= v)") == true);
  b.screenshot(shots + "06-activities.png");
  for (const char* page : {"/companies", "/contacts", "/tasks"}) {
    b.go(crm.base + page);
    BOOST_TEST(count(b, "table tbody tr") > 0, page << " lists records");
  }
  b.screenshot(shots + "07-tasks.png");

  // Disconnect from the widget: not connected, and the connection's badge says so.
  b.go(crm.base + "/integrations");
  BOOST_REQUIRE(widget_says(b, "Connected"));
  b.shadow_click("fathom-connect", "button[data-action=disconnect]");
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Not connected"), "the widget says: " << widget_status(b));
  BOOST_TEST(eventually([&] { return count(b, "#connections [data-status=disconnected]") >= 1; }),
             "the connection's badge says disconnected");
  b.screenshot(shots + "08-disconnected.png");
}

BOOST_AUTO_TEST_CASE(blocked_popup_falls_back_to_the_redirect_flow_through_the_sidecar) {
  const int sidecar_port = free_port(), frontend_port = free_port();
  const std::string bridge = "http://127.0.0.1:" + std::to_string(sidecar_port);
  const std::string frontend = "http://127.0.0.1:" + std::to_string(frontend_port);
  const std::string secret = "browser-test-session-secret-0123456789";
  const std::string shots = artifacts("blocked_popup_falls_back_to_the_redirect_flow_through_the_sidecar");
  SimProcess sim({"--meetings", "3", "--seed", "5", "--redirect-uri", bridge + "/oauth/callback"});
  TempDir dir;
  json cfg = {{"fathom", sim.fathom_settings(bridge + "/oauth/callback")},
              {"frontend", {{"url", frontend}}},
              {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'w'))}}},
              {"store", {{"path", dir.file("bridge.db")}}},
              {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
              {"sync", {{"scheduler", false}}},
              {"user_api", {{"jwt_secret", secret}, {"issuer", frontend}, {"audience", "fathom-bridge"},
                            {"allowed_origins", {frontend}}}}};
  auto config = fb::parse_config(cfg.dump(), false);
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  auto opened = fb::Bridge::open(*config);
  BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  auto sidecar = fb::detail::Sidecar::start(**opened, sidecar_port);
  BOOST_REQUIRE_MESSAGE(sidecar.ok(), sidecar.status().to_string());

  // The CRM's session JWT for its user u-jwt, as its backend would sign it.
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  json claims = {{"iss", frontend}, {"aud", "fathom-bridge"}, {"sub", "u-jwt"}, {"tenant_id", "acme"}, {"exp", now + 900}};
  jwt_add_grants_json(jwt, claims.dump().c_str());
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()), static_cast<int>(secret.size()));
  char* signed_token = jwt_encode_str(jwt);
  const std::string token = signed_token;
  free(signed_token);
  jwt_free(jwt);

  // The CRM page (frontend.url + frontend.success_path, where the redirect flow returns): the
  // widget from the sidecar, given the user's token before it loads.
  const std::string page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>CRM integrations</title></head><body>"
                           "<h1>Integrations</h1><fathom-connect endpoint=\"" + bridge + "\"></fathom-connect>"
                           "<script>document.querySelector('fathom-connect').token = '" + token + "';</script>"
                           "<script type=\"module\" src=\"" + bridge + "/fathom/widget.js\"></script></body></html>";
  httplib::Server server;
  server.Get("/settings/integrations/fathom", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(page, "text/html; charset=utf-8");
  });
  BOOST_REQUIRE(server.bind_to_port("127.0.0.1", frontend_port));
  std::thread serving([&] { server.listen_after_bind(); });
  struct Stop {
    httplib::Server& s;
    std::thread& t;
    ~Stop() {
      s.stop();
      t.join();
    }
  } stop{server, serving};

  TempDir profile;
  // Chromium's own popup blocker, on as for users (chromedriver turns it off by default).
  Browser b(profile.path(), {}, {"disable-popup-blocking"});
  b.go(frontend + "/settings/integrations/fathom");
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Not connected"), "the widget says: " << widget_status(b));
  b.screenshot(shots + "01-not-connected.png");

  // A click without user activation (a script's, as when a page calls connect() after an await):
  // the blocker refuses the window, window.open returns null, and the widget goes the redirect way.
  b.script("document.querySelector('fathom-connect').shadowRoot.querySelector('button[data-action=connect]').click()");
  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.url().rfind(sim.base_url(), 0) == 0; }),
                        "the window did not go to Fathom's consent page: " << b.url() << "; windows: "
                            << b.windows().size() << "; the widget says: " << widget_message(b));
  BOOST_TEST(b.windows().size() == 1u);  // no popup: the whole window went
  BOOST_REQUIRE(eventually([&] { return b.script("return document.querySelector('button.approve') !== null") == true; }));
  b.screenshot(shots + "02-consent-in-the-window.png");
  b.click("button.approve");

  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.url().rfind(frontend + "/settings/integrations/fathom?fathom=connected", 0) == 0; }),
                        "the window did not come back to the CRM page: " << b.url());
  BOOST_REQUIRE_MESSAGE(widget_says(b, "Connected"), "the widget says: " << widget_status(b));
  BOOST_TEST(outcome(b) == "redirect");
  b.screenshot(shots + "03-connected.png");
  auto rows = (*opened)->token_health_json("acme", "u-jwt");
  BOOST_REQUIRE(rows.ok());
  BOOST_TEST(json::parse(*rows).size() == 1u);  // the JWT's user owns the new integration
  (*sidecar)->stop();
}

BOOST_AUTO_TEST_SUITE_END()
