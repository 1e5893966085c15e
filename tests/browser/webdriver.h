// webdriver.h: headless Chromium over WebDriver (chromedriver as a child process) for the browser
// tests, kept on loopback: every host name resolves to nothing except 127.0.0.1, a dead proxy takes
// anything that is not loopback, and its background services are off.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/encoding.h"
#include "support/wait.h"

namespace fb::test {

using nlohmann::json;

// The local addresses of the TCP sockets listening on port, from /proc/net/tcp and tcp6 (hex
// address and port, state 0A), as "a.b.c.d" or a 32-hex-digit IPv6 address.
inline std::vector<std::string> listening_addresses(int port) {
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
inline void expect_loopback_only(int port, const std::string& who) {
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
  // extra_args: more Chromium switches. exclude_switches: chromedriver's default switches to leave
  // out (e.g. "disable-popup-blocking", so that Chromium's popup blocker works as for users).
  explicit Browser(const std::string& profile_dir, const std::vector<std::string>& extra_args = {},
                   const std::vector<std::string>& exclude_switches = {}) {
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
    for (const auto& a : extra_args) args.push_back(a);
    json chrome = {{"args", args}};
    if (!exclude_switches.empty()) chrome["excludeSwitches"] = exclude_switches;
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
  // A light-DOM element inside the open shadow root of the element `host` (WebDriver's shadow root
  // commands), then clicked as a user would: a real click, with user activation.
  std::string shadow_element(const std::string& host, const std::string& css) {
    json root = session("GET", "/element/" + element(host) + "/shadow")["value"];
    std::string id = root.begin().value();  // {"shadow-6066-...": id}
    json v = session("POST", "/shadow/" + id + "/element", {{"using", "css selector"}, {"value", css}})["value"];
    return v.begin().value();
  }
  void shadow_click(const std::string& host, const std::string& css) {
    session("POST", "/element/" + shadow_element(host, css) + "/click", json::object());
  }
  // Saves what the current window shows as a PNG at path (folders made as needed).
  void screenshot(const std::string& path) {
    std::string b64 = session("GET", "/screenshot")["value"];
    auto png = fb::detail::base64_decode(b64);
    BOOST_REQUIRE(png.has_value());
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << *png;
    BOOST_TEST_MESSAGE("screenshot: " << path);
  }
  std::vector<std::string> windows() { return session("GET", "/window/handles")["value"].get<std::vector<std::string>>(); }
  std::string window() { return session("GET", "/window")["value"]; }
  void switch_to(const std::string& handle) { session("POST", "/window", {{"handle", handle}}); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
  std::string session_;
};

// After a click on the page in window `main` opened the connect popup: switches to it, decides
// ("approve" or "deny") on Fathom's consent page (fathom-sim at sim_base), waits for the callback
// page to close the popup, and switches back to main.
inline void decide_in_popup(Browser& b, const std::string& main, const std::string& sim_base,
                            const std::string& decision) {
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

}  // namespace fb::test
