#include "sim/sim_data.h"

#include "core/clock.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace fb::sim {
namespace {

struct Person {
  std::string name;
  std::string email;
  std::string team;  // "" for externals
};

struct Company {
  std::string name;
  std::string domain;
  std::vector<std::string> people;  // "First Last"
};

const std::vector<Company>& companies() {
  static const std::vector<Company> list = {
      {"Acme", "acme.test", {"Priya Shah", "Tom Becker", "Lena Novak", "Marcus Reed"}},
      {"Globex", "globex.test", {"Sofia Marin", "Daniel Kim", "Grace Liu", "Omar Haddad"}},
      {"Initech", "initech.test", {"Peter Gill", "Nina Patel", "Bill Lumb", "Joanna Reyes"}},
      {"Umbrella", "umbrella.test", {"Jill Varga", "Chris Redd", "Ada Wang"}},
      {"Hooli", "hooli.test", {"Gavin Bell", "Monica Hall", "Jared Dunn"}},
  };
  return list;
}

// example.com people who attend meetings but have no Fathom account in the simulator.
const std::vector<Person>& colleagues() {
  static const std::vector<Person> list = {
      {"Dana Scott", "dana@example.com", "Sales"},
      {"Erin Park", "erin@example.com", "Engineering"},
      {"Frank Ortiz", "frank@example.com", "Customer Success"},
  };
  return list;
}

std::string email_of(const std::string& full_name, const std::string& domain) {
  std::string local;
  for (char c : full_name) local += c == ' ' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return local + "@" + domain;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

std::string team_of(const std::string& email, const std::vector<User>& users) {
  for (const auto& u : users) {
    if (u.email == email) return u.team;
  }
  for (const auto& c : colleagues()) {
    if (c.email == email) return c.team;
  }
  return {};
}

const std::vector<std::string> kExternalTopics = {
    "{C} onboarding call", "{C} quarterly business review", "Demo for {C}", "{C} renewal discussion",
    "{C} pricing review", "Discovery call with {C}", "{C} implementation check-in",
    "{C} security questionnaire walkthrough"};
const std::vector<std::string> kInternalTopics = {
    "Weekly pipeline review", "Sprint planning", "Engineering sync", "Sales standup", "Incident retro",
    "Product roadmap sync", "Hiring debrief", "Forecast call"};

const std::vector<std::string> kExternalLines = {
    "Thanks for joining, let's start with the timeline.",
    "Sounds good. We reviewed the proposal internally last week.",
    "The main question on our side is how the rollout works for {C}.",
    "We usually start with a pilot team of ten to fifteen people.",
    "Can you walk us through the SSO setup?",
    "Sure, it supports SAML and takes about a day to configure.",
    "Our security team will want the questionnaire answered first.",
    "We can send that over by Friday.",
    "What does pricing look like if we expand to the whole department?",
    "There is a volume discount above fifty seats.",
    "Let's make sure legal sees the contract redlines early.",
    "I will loop in our procurement contact.",
    "The integration with our CRM is the must-have for us.",
    "That is live today; contacts and deals sync both ways.",
    "Can we get a sandbox to try it with real data?",
    "Yes, I'll set one up after this call.",
    "Let's recap the next steps before we wrap up.",
    "Great, thanks everyone. Talk next week."};
const std::vector<std::string> kInternalLines = {
    "Okay, let's get started, we have a full agenda.",
    "We blocked on the flaky deploy job most of the week.",
    "The migration is done for two of the three services.",
    "Let's move the retro action items into the sprint.",
    "The pipeline for this quarter looks healthy.",
    "Two deals slipped to next month because of budget reviews.",
    "Can someone own the follow-up with legal?",
    "I can take that one.",
    "The new hire starts on Monday; onboarding doc is ready.",
    "We should revisit the forecast once the Acme deal closes.",
    "Latency on the sync service is back to normal.",
    "Let's keep this meeting to thirty minutes next time.",
    "Thanks all, see you next week."};

const std::vector<std::string> kActions = {
    "Send the revised proposal to {C}", "Share the security questionnaire answers",
    "Schedule a follow-up demo with {C}", "Update the opportunity in the CRM", "Draft the onboarding plan",
    "Set up a sandbox for {C}", "Prepare the QBR deck", "Review the contract redlines",
    "Loop in procurement"};
const std::vector<std::string> kInternalActions = {
    "File a ticket for the flaky deploy job", "Update the quarterly forecast", "Finish the service migration",
    "Share the onboarding doc with the new hire", "Follow up with legal on the template"};

const std::vector<std::string> kExternalTakeaways = {
    "{C} wants a pilot with one team before a wider rollout.", "SSO and the CRM integration are must-haves for {C}.",
    "Budget approval is expected next month.", "Security review is the main blocker.",
    "{C} agreed on the timeline.", "Pricing above fifty seats needs a volume discount."};
const std::vector<std::string> kInternalTakeaways = {
    "The team agreed on the timeline.", "Two risks were raised about the migration.",
    "The quarter's pipeline is on track.", "Deploy reliability needs an owner.", "Hiring is behind plan by one role."};

struct Speaker {
  std::string display_name;
  std::optional<std::string> email;  // matched invitee
};

// The speakers of a meeting: derived from content_seed so invitees and transcript agree.
std::vector<Speaker> speakers_of(const Meeting& m) {
  Rng r(m.content_seed ^ 0x51ULL);
  std::vector<Speaker> out;
  for (const auto& inv : m.invitees) {
    bool recorder = inv.email == m.recorder_email;
    if (recorder || r.chance(0.7)) out.push_back({inv.name, inv.email});
  }
  if (out.size() < 2 || r.chance(0.2)) out.push_back({m.company.empty() ? "Guest" : "Guest (" + m.company + ")", {}});
  return out;
}

std::string fill(const std::string& text, const Meeting& m) {
  return replace_all(text, "{C}", m.company.empty() ? "the team" : m.company);
}

}  // namespace

std::string Rng::alnum(size_t n) {
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kChars[next() % 62];
  return s;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

bool Meeting::has_external() const {
  return std::any_of(invitees.begin(), invitees.end(), [](const Invitee& i) { return i.external; });
}
std::string Meeting::url() const { return "https://fathom.video/calls/" + std::to_string(recording_id); }
std::string Meeting::share_url() const { return "https://fathom.video/share/" + share_token; }

std::string iso8601(int64_t unix_s) { return fb::detail::format_iso8601(unix_s); }

std::string hhmmss(int64_t s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  return buf;
}

std::vector<User> default_users(uint64_t seed) {
  Rng r(seed ^ 0xa11ce5ULL);
  std::vector<User> users = {
      {"alice@example.com", "Alice Anderson", "Sales", "", 1704067200},
      {"bob@example.com", "Bob Brown", "Sales", "", 1704153600},
      {"carol@example.com", "Carol Chen", "Engineering", "", 1704240000},
  };
  for (auto& u : users) u.api_key = "fk_" + r.alnum(40);
  return users;
}

Meeting Generator::make(int64_t recording_id, int64_t created_at, const User& recorder, const std::vector<User>& users) {
  Meeting m;
  m.recording_id = recording_id;
  m.created_at = created_at;
  m.recorder_email = recorder.email;
  m.recorder_name = recorder.name;
  m.team = recorder.team;
  m.content_seed = rng_.next();
  m.share_token = rng_.alnum(20);

  m.invitees.push_back({recorder.name, recorder.email, kCompanyDomain, false});
  // Internal attendees: other accounts and colleagues.
  std::vector<Person> internal;
  for (const auto& u : users) {
    if (u.email != recorder.email) internal.push_back({u.name, u.email, u.team});
  }
  for (const auto& c : colleagues()) internal.push_back(c);
  int internal_extra = static_cast<int>(rng_.range(0, 2));
  bool external = rng_.chance(0.75);
  if (!external && internal_extra == 0) internal_extra = 1;
  for (int i = 0; i < internal_extra; ++i) {
    const Person& p = rng_.pick(internal);
    bool dup = std::any_of(m.invitees.begin(), m.invitees.end(), [&](const Invitee& x) { return x.email == p.email; });
    if (!dup) m.invitees.push_back({p.name, p.email, kCompanyDomain, false});
  }
  if (external) {
    const Company& c = rng_.pick(companies());
    m.company = c.name;
    int n = static_cast<int>(rng_.range(1, 3));
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) {
      const std::string& name = rng_.pick(c.people);
      if (seen.insert(name).second) m.invitees.push_back({name, email_of(name, c.domain), c.domain, true});
    }
    if (rng_.chance(0.15)) {  // a partner from a second company joins
      const Company& c2 = rng_.pick(companies());
      if (c2.domain != c.domain) {
        const std::string& name = rng_.pick(c2.people);
        m.invitees.push_back({name, email_of(name, c2.domain), c2.domain, true});
      }
    }
    std::string topic = rng_.pick(kExternalTopics);
    m.title = replace_all(topic, "{C}", c.name);
    if (!rng_.chance(0.05)) m.meeting_title = c.name + " x Example | " + replace_all(topic, "{C} ", "");
  } else {
    m.title = rng_.pick(kInternalTopics);
    if (!rng_.chance(0.05)) m.meeting_title = m.title;
  }
  m.meeting_title = m.meeting_title ? std::optional<std::string>(replace_all(*m.meeting_title, "{C}", m.company)) : std::nullopt;

  int64_t processing = rng_.range(60, 420);
  int64_t duration = rng_.range(12, 58) * 60 + rng_.range(0, 59);
  int64_t lateness = rng_.range(0, 240);
  m.recording_end = created_at - processing;
  m.recording_start = m.recording_end - duration;
  m.scheduled_start = (m.recording_start - lateness) / 300 * 300;  // calendars start on 5-minute marks
  m.scheduled_end = m.scheduled_start + (duration > 1800 ? 3600 : 1800);
  double lang = static_cast<double>(rng_.range(0, 99));
  m.language = lang < 95 ? "en" : (lang < 98 ? "de" : "unknown");
  return m;
}

std::vector<Meeting> Generator::initial(int64_t count, int64_t newest_created_at, int64_t first_id,
                                        const std::vector<User>& recorders) {
  std::vector<int64_t> created(static_cast<size_t>(count));
  int64_t t = newest_created_at;
  for (int64_t i = count - 1; i >= 0; --i) {
    created[static_cast<size_t>(i)] = t;
    t -= rng_.range(900, 6 * 3600);
  }
  std::vector<Meeting> out;
  out.reserve(static_cast<size_t>(count));
  int64_t id = first_id;
  for (int64_t i = 0; i < count; ++i) {
    const User& recorder = rng_.pick(recorders);
    out.push_back(make(id, created[static_cast<size_t>(i)], recorder, recorders));
    id += next_id_gap();
  }
  return out;
}

ojson transcript_json(const Meeting& m, const std::vector<User>&) {
  Rng r(m.content_seed ^ 0x7A11ULL);
  std::vector<Speaker> speakers = speakers_of(m);
  ojson items = ojson::array();
  int64_t duration = m.recording_end - m.recording_start;
  int64_t t = r.range(2, 9);
  int lines = static_cast<int>(r.range(8, 24));
  const auto& pool = m.company.empty() ? kInternalLines : kExternalLines;
  size_t line_idx = static_cast<size_t>(r.range(0, static_cast<int64_t>(pool.size()) - 1));
  for (int i = 0; i < lines && t < duration; ++i) {
    const Speaker& s = speakers[i < static_cast<int>(speakers.size()) ? static_cast<size_t>(i) : static_cast<size_t>(r.next() % speakers.size())];
    ojson sp = {{"display_name", s.display_name}, {"matched_calendar_invitee_email", nullptr}};
    if (s.email) sp["matched_calendar_invitee_email"] = *s.email;
    items.push_back({{"speaker", sp}, {"text", fill(pool[line_idx % pool.size()], m)}, {"timestamp", hhmmss(t)}});
    line_idx += static_cast<size_t>(r.range(1, 3));
    t += r.range(5, std::max<int64_t>(6, duration / lines));
  }
  return items;
}

ojson summary_json(const Meeting& m) {
  Rng r(m.content_seed ^ 0x5011ULL);
  std::string md = "## Meeting Purpose\n" + fill(m.company.empty() ? "Internal sync: " + m.title + "." :
                                                                    "Discuss next steps with {C}.", m) + "\n\n## Key Takeaways\n";
  int n = static_cast<int>(r.range(2, 3));
  for (int i = 0; i < n; ++i) md += "- " + fill(r.pick(m.company.empty() ? kInternalTakeaways : kExternalTakeaways), m) + "\n";
  md += "\n## Next Steps\n";
  ojson actions = action_items_json(m, {});
  if (actions.empty()) md += "- None recorded.\n";
  for (const auto& a : actions) md += "- " + a["description"].get<std::string>() + "\n";
  return {{"template_name", "general"}, {"markdown_formatted", md}};
}

ojson action_items_json(const Meeting& m, const std::vector<User>& users) {
  Rng r(m.content_seed ^ 0xAC7ULL);
  ojson items = ojson::array();
  int n = static_cast<int>(r.range(0, 4));
  int64_t duration = m.recording_end - m.recording_start;
  const auto& actions = m.company.empty() ? kInternalActions : kActions;
  for (int i = 0; i < n; ++i) {
    int64_t at = r.range(30, std::max<int64_t>(31, duration - 1));
    ojson assignee = {{"name", nullptr}, {"email", nullptr}, {"team", nullptr}};
    double who = static_cast<double>(r.range(0, 99));
    std::vector<const Invitee*> pool;
    for (const auto& inv : m.invitees) {
      if (inv.external == (who >= 75 && who < 90)) pool.push_back(&inv);
    }
    if (who < 90 && !pool.empty()) {
      const Invitee* p = pool[static_cast<size_t>(r.next() % pool.size())];
      assignee["name"] = p->name;
      assignee["email"] = p->email;
      std::string team = p->external ? "" : team_of(p->email, users.empty() ? default_users(0) : users);
      if (!team.empty()) assignee["team"] = team;
    }
    items.push_back({{"description", fill(r.pick(actions), m)},
                     {"user_generated", r.chance(0.2)},
                     {"completed", r.chance(0.3)},
                     {"recording_timestamp", hhmmss(at)},
                     {"recording_playback_url", m.url() + "#t=" + std::to_string(at)},
                     {"assignee", assignee}});
  }
  return items;
}

ojson crm_matches_json(const Meeting& m) {
  ojson out = {{"contacts", ojson::array()}, {"companies", ojson::array()}, {"deals", ojson::array()}, {"error", nullptr}};
  if (m.team == "Engineering") {  // that team has no CRM linked
    out["error"] = "no CRM connected";
    return out;
  }
  std::set<std::string> domains;
  for (const auto& inv : m.invitees) {
    if (!inv.external) continue;
    out["contacts"].push_back({{"name", inv.name}, {"email", inv.email},
                               {"record_url", "https://crm.example.test/contacts/" + std::to_string(fnv1a(inv.email) % 100000)}});
    domains.insert(inv.domain);
  }
  Rng r(m.content_seed ^ 0xC2ULL);
  for (const auto& c : companies()) {
    if (!domains.count(c.domain)) continue;
    out["companies"].push_back({{"name", c.name},
                                {"record_url", "https://crm.example.test/companies/" + std::to_string(fnv1a(c.domain) % 10000)}});
    if (r.chance(0.5)) {
      out["deals"].push_back({{"name", c.name + " renewal"}, {"amount", r.range(5, 120) * 1000},
                              {"record_url", "https://crm.example.test/deals/" + std::to_string(fnv1a(c.name + " renewal") % 10000)}});
    }
  }
  return out;
}

ojson meeting_json(const Meeting& m, const Includes& inc, const std::vector<User>& users) {
  std::vector<Speaker> speakers;
  if (inc.transcript) speakers = speakers_of(m);
  ojson invitees = ojson::array();
  for (const auto& inv : m.invitees) {
    ojson j;
    j["name"] = inv.name;
    if (inc.transcript) {
      j["matched_speaker_display_name"] = nullptr;
      for (const auto& s : speakers) {
        if (s.email && *s.email == inv.email) j["matched_speaker_display_name"] = s.display_name;
      }
    }
    j["email"] = inv.email;
    j["email_domain"] = inv.domain;
    j["is_external"] = inv.external;
    invitees.push_back(std::move(j));
  }
  ojson out;
  out["title"] = m.title;
  out["meeting_title"] = m.meeting_title ? ojson(*m.meeting_title) : ojson(nullptr);
  out["recording_id"] = m.recording_id;
  out["url"] = m.url();
  out["share_url"] = m.share_url();
  out["created_at"] = iso8601(m.created_at);
  out["scheduled_start_time"] = iso8601(m.scheduled_start);
  out["scheduled_end_time"] = iso8601(m.scheduled_end);
  out["recording_start_time"] = iso8601(m.recording_start);
  out["recording_end_time"] = iso8601(m.recording_end);
  out["calendar_invitees_domains_type"] = m.has_external() ? "one_or_more_external" : "only_internal";
  out["transcript_language"] = m.language;
  out["calendar_invitees"] = std::move(invitees);
  out["recorded_by"] = {{"name", m.recorder_name},
                        {"email", m.recorder_email},
                        {"email_domain", kCompanyDomain},
                        {"team", m.team.empty() ? ojson(nullptr) : ojson(m.team)}};
  if (inc.transcript) out["transcript"] = transcript_json(m, users);
  if (inc.summary) out["default_summary"] = summary_json(m);
  if (inc.action_items) out["action_items"] = action_items_json(m, users);
  if (inc.crm_matches) out["crm_matches"] = crm_matches_json(m);
  return out;
}

}  // namespace fb::sim
