#include "cli/store_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "bridge/store_copy.h"

namespace fb::cli {

const char* const kStoreUsage =
    "  store copy --from PATH --to URL [--json]   move a single-host installation (its SQLite file and webhook\n"
    "                                             bodies) into an empty PostgreSQL database; stop the host first\n";

int store_command(const std::vector<std::string>& positional, const std::map<std::string, std::string>& values,
                  std::ostream& out, std::ostream& err) {
  auto value = [&](const char* k) {
    auto it = values.find(k);
    return it == values.end() ? std::string() : it->second;
  };
  if (positional.size() != 1 || positional[0] != "copy" || value("from").empty() || value("to").empty()) {
    err << "fathom-bridge: store needs 'copy --from <sqlite path> --to <postgresql url>'\n\nusage:\n" << kStoreUsage;
    return 2;
  }
  auto report = detail::copy_store(value("from"), value("to"));
  if (!report.ok()) {
    err << "fathom-bridge: " << report.status().to_string() << "\n";
    return 1;
  }
  if (values.count("json")) {
    nlohmann::json tables = nlohmann::json::object();
    for (const auto& t : report->tables) tables[t.table] = t.rows;
    out << nlohmann::json{{"tables", tables},
                          {"rows", report->total_rows()},
                          {"bodies_moved", report->bodies_moved},
                          {"sequences_set", report->sequences_set},
                          {"texts_mended", report->texts_mended}}
               .dump(2)
        << "\n";
    return 0;
  }
  char line[128];
  std::snprintf(line, sizeof line, "%-28s %10s\n", "TABLE", "ROWS");
  out << line;
  for (const auto& t : report->tables) {
    std::snprintf(line, sizeof line, "%-28s %10lld\n", t.table.c_str(), static_cast<long long>(t.rows));
    out << line;
  }
  out << "copied " << report->total_rows() << " rows of " << report->tables.size() << " tables in one transaction ("
      << report->bodies_moved << " webhook bodies moved from the body log into their rows, " << report->sequences_set
      << " id sequences advanced)\n";
  if (report->texts_mended > 0) {
    out << report->texts_mended << " text value(s) held a NUL or bytes that are not UTF-8, which PostgreSQL text "
        << "cannot: copied with U+FFFD in their place\n";
  }
  return 0;
}

}  // namespace fb::cli
