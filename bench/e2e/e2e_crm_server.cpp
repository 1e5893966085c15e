// e2e_crm_server: the CRM of system (b) in bench/e2e: `fathom-bridge serve` POSTs every crm.<op>
// call to server.crm_url (plugin/server/sidecar.cpp); this server answers them from the same SQLite
// tables as the in-process host (crm_tables.h), one transaction per call (HTTP has no batch).
//
//   e2e_crm_server --crm-db FILE --schema FILE
// First stdout line: "listening <port>". Stops on SIGTERM/SIGINT.
#include <cstring>
#include <iostream>
#include <string>

#include "crm_tables.h"
#include "serve.h"

namespace {

std::string arg(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return "";
}

// The string value of "operation" in the call's JSON text (the bridge writes it without escapes).
std::string operation_of(const std::string& body) {
  size_t at = body.find("\"operation\":\"");
  if (at == std::string::npos) return "";
  at += 13;
  return body.substr(at, body.find('"', at) - at);
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t stop_signals = e2e::block_stop_signals();
  e2e::CrmTables crm(arg(argc, argv, "--crm-db"), arg(argc, argv, "--schema"));
  httplib::Server svr;
  svr.Post("/crm", [&crm](const httplib::Request& req, httplib::Response& res) {
    std::string out;
    if (crm.call(operation_of(req.body), e2e::args_of(req.body.c_str()), &out)) {
      res.set_content(out, "application/json");
    } else {
      res.status = 422;
      res.set_content(out, "text/plain");
    }
  });
  e2e::serve(svr, stop_signals, 16);
  return 0;
}
