// sim_data.h: fathom-sim's data model and its deterministic generator of realistic meetings.
//
// A Meeting keeps only what filtering, paging and the base Meeting JSON need. The heavy parts
// (transcript, summary, action items, CRM matches) are derived on demand from the meeting's
// content_seed, so 10,000 meetings cost a few megabytes and every render of the same meeting is
// byte-identical. Everything here is pure: no locks, no I/O. Thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fb::sim {

using ojson = nlohmann::ordered_json;

inline constexpr const char* kCompanyDomain = "example.com";

struct User {
  std::string email;
  std::string name;
  std::string team;
  std::string api_key;
  int64_t created_at = 0;  // unix seconds
};

struct Invitee {
  std::string name;
  std::string email;
  std::string domain;
  bool external = false;
};

struct Meeting {
  int64_t recording_id = 0;
  int64_t created_at = 0;  // unix seconds; the paging key with recording_id
  std::string title;
  std::optional<std::string> meeting_title;
  std::string share_token;
  int64_t scheduled_start = 0, scheduled_end = 0, recording_start = 0, recording_end = 0;
  std::string language;
  std::vector<Invitee> invitees;
  std::string recorder_email, recorder_name, team;  // recorded_by; team may be "" (no team)
  std::string company;                              // main external company name, "" when internal
  uint64_t content_seed = 0;

  bool has_external() const;
  std::string url() const;
  std::string share_url() const;
};

// Which optional Meeting keys to add (fathom-api.md 3.1 include_* flags).
struct Includes {
  bool transcript = false;
  bool summary = false;
  bool action_items = false;
  bool crm_matches = false;
};

// Deterministic small PRNG helpers over mt19937_64 (whose output sequence the standard fixes).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t next() { return g_(); }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[static_cast<size_t>(next() % v.size())]; }
  std::string alnum(size_t n);

 private:
  std::mt19937_64 g_;
};

// The three default Fathom accounts of example.com (alice, bob: Sales; carol: Engineering), with
// API keys derived from the seed.
std::vector<User> default_users(uint64_t seed);

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed ^ 0x5fa7d0b1d9e3779bULL) {}
  // `count` meetings recorded by `recorders` (round robin weighted at random), the newest created
  // at `newest_created_at`, oldest first, ids increasing from `first_id`.
  std::vector<Meeting> initial(int64_t count, int64_t newest_created_at, int64_t first_id,
                               const std::vector<User>& recorders);
  // One meeting created at `created_at`, recorded by `recorder`.
  Meeting make(int64_t recording_id, int64_t created_at, const User& recorder, const std::vector<User>& users);
  // The id gap between consecutive meetings.
  int64_t next_id_gap() { return rng_.range(1, 4000); }

 private:
  Rng rng_;
};

// The on-demand parts, byte-stable for a given meeting.
ojson transcript_json(const Meeting& m, const std::vector<User>& users);
ojson summary_json(const Meeting& m);
ojson action_items_json(const Meeting& m, const std::vector<User>& users);
ojson crm_matches_json(const Meeting& m);
// The Meeting object of fathom-api.md 4, with the optional keys chosen by `inc`.
ojson meeting_json(const Meeting& m, const Includes& inc, const std::vector<User>& users);

std::string iso8601(int64_t unix_s);
std::string hhmmss(int64_t seconds);
// FNV-1a: a stable hash for derived ids (CRM record ids, team timestamps).
uint64_t fnv1a(const std::string& s);

}  // namespace fb::sim
