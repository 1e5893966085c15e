#include "store/pg_dialect.h"

#include <cctype>

namespace fb::detail {
namespace {

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Skips a quoted literal, identifier or comment starting at i; returns the index after it, or i
// when nothing quoted starts there.
size_t skip_quoted(std::string_view s, size_t i) {
  char c = s[i];
  if (c == '\'' || c == '"') {
    size_t j = i + 1;
    while (j < s.size()) {
      if (s[j] == c) {
        if (j + 1 < s.size() && s[j + 1] == c) {
          j += 2;  // doubled quote inside
          continue;
        }
        return j + 1;
      }
      ++j;
    }
    return s.size();
  }
  if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
    size_t e = s.find('\n', i);
    return e == std::string_view::npos ? s.size() : e;
  }
  if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
    size_t e = s.find("*/", i + 2);
    return e == std::string_view::npos ? s.size() : e + 2;
  }
  return i;
}

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

// The word starting at i (after spaces), and where it ends.
std::string_view word_at(std::string_view s, size_t i, size_t* end) {
  i = skip_space(s, i);
  size_t j = i;
  while (j < s.size() && word_char(s[j])) ++j;
  *end = j;
  return s.substr(i, j - i);
}

// Whether the parenthesis opening at `open` holds a comma at its own depth: MAX(a, b) is the
// scalar function, MAX(a) the aggregate.
bool has_top_level_comma(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size();) {
    size_t q = skip_quoted(s, i);
    if (q != i) {
      i = q;
      continue;
    }
    char c = s[i++];
    if (c == '(') ++depth;
    else if (c == ')' && --depth == 0) return false;
    else if (c == ',' && depth == 1) return true;
  }
  return false;
}

}  // namespace

std::string to_postgres_sql(std::string_view s, int* params) {
  std::string out;
  out.reserve(s.size() + 16);
  int n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t q = skip_quoted(s, i);
    if (q != i) {
      out.append(s.substr(i, q - i));
      i = q;
      continue;
    }
    char c = s[i];
    if (c == '?') {
      // ?NNN keeps its number; a bare ? takes the one after the largest so far (SQLite's rule).
      size_t d = i + 1;
      while (d < s.size() && std::isdigit(static_cast<unsigned char>(s[d]))) ++d;
      int number = d > i + 1 ? std::stoi(std::string(s.substr(i + 1, d - i - 1))) : n + 1;
      if (number > n) n = number;
      out += '$';
      out += std::to_string(number);
      i = d;
      continue;
    }
    if (!word_char(c) || (i > 0 && word_char(s[i - 1]))) {
      out += c;
      ++i;
      continue;
    }
    size_t end = i;
    while (end < s.size() && word_char(s[end])) ++end;
    std::string_view w = s.substr(i, end - i);
    if (iequals(w, "INTEGER")) {
      size_t e1 = 0, e2 = 0, e3 = 0;
      if (iequals(word_at(s, end, &e1), "PRIMARY") && iequals(word_at(s, e1, &e2), "KEY")) {
        out += "BIGSERIAL PRIMARY KEY";
        end = iequals(word_at(s, e2, &e3), "AUTOINCREMENT") ? e3 : e2;
      } else {
        out += "BIGINT";
      }
    } else if (iequals(w, "AUTOINCREMENT")) {
      // dropped: a PostgreSQL sequence never gives an id twice anyway
    } else if (iequals(w, "BLOB")) {
      out += "BYTEA";
    } else if (iequals(w, "REAL")) {
      out += "DOUBLE PRECISION";
    } else if (size_t e = 0; iequals(w, "WITHOUT") && iequals(word_at(s, end, &e), "ROWID")) {
      end = e;
    } else if ((iequals(w, "MAX") || iequals(w, "MIN")) && skip_space(s, end) < s.size() &&
               s[skip_space(s, end)] == '(' && has_top_level_comma(s, skip_space(s, end))) {
      out += iequals(w, "MAX") ? "GREATEST" : "LEAST";
    } else {
      out.append(w);
    }
    i = end;
  }
  if (params) *params = n;
  return out;
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  size_t scheme = out.find("://");
  size_t at = out.find('@', scheme == std::string::npos ? 0 : scheme + 3);
  size_t slash = out.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos && (slash == std::string::npos || at < slash)) {
    size_t colon = out.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    size_t e = out.find_first_of("& ", p);
    out.replace(p + 9, (e == std::string::npos ? out.size() : e) - p - 9, "***");
  }
  return out;
}

}  // namespace fb::detail
