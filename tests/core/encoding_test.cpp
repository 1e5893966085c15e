// Encodings and hashes against published vectors (RFC 4648 section 10, RFC 4231 case 2, FIPS 180-2).
#include <boost/test/unit_test.hpp>

#include "core/clock.h"
#include "core/utf8.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"

using namespace fb::detail;

BOOST_AUTO_TEST_SUITE(encoding)

BOOST_AUTO_TEST_CASE(base64_rfc4648_vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, enc] : v) {
    BOOST_TEST(base64_encode(plain) == enc);
    auto dec = base64_decode(enc);
    BOOST_REQUIRE(dec.has_value());
    BOOST_TEST(*dec == plain);
  }
}

BOOST_AUTO_TEST_CASE(base64_rejects_bad_characters) {
  BOOST_TEST(!base64_decode("Zm9v!").has_value());
  BOOST_TEST(!base64_decode("Z").has_value());  // one character cannot carry a byte
  BOOST_TEST(!base64url_decode("ab+/").has_value());
}

BOOST_AUTO_TEST_CASE(base64url_has_no_padding_or_plus) {
  std::string bytes = "\xfb\xff\xfe";
  BOOST_TEST(base64url_encode(bytes) == "-__-");
  BOOST_TEST(*base64url_decode("-__-") == bytes);
}

BOOST_AUTO_TEST_CASE(form_round_trip_and_errors) {
  std::string body = form_encode({{"grant_type", "authorization_code"}, {"redirect_uri", "http://x/cb?a=1&b=2"},
                                  {"note", "a b+c"}});
  BOOST_TEST(body == "grant_type=authorization_code&redirect_uri=http%3A%2F%2Fx%2Fcb%3Fa%3D1%26b%3D2&note=a%20b%2Bc");
  auto fields = form_decode(body);
  BOOST_REQUIRE(fields.has_value());
  BOOST_REQUIRE_EQUAL(fields->size(), 3u);
  BOOST_TEST((*fields)[1].second == "http://x/cb?a=1&b=2");
  BOOST_TEST((*fields)[2].second == "a b+c");
  BOOST_TEST(form_decode("a=b+c")->at(0).second == "b c");
  BOOST_TEST(!form_decode("a=%zz").has_value());
  BOOST_TEST(!form_decode("a=%4").has_value());
}

BOOST_AUTO_TEST_CASE(sha256_and_hmac_vectors) {
  BOOST_TEST(hex_encode(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  BOOST_TEST(hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  BOOST_TEST(hmac_sha256_parts("Jefe", {"what do ya ", "want for ", "nothing?"}) ==
             hmac_sha256("Jefe", "what do ya want for nothing?"));
  BOOST_TEST(constant_time_equal("abc", "abc"));
  BOOST_TEST(!constant_time_equal("abc", "abd"));
  BOOST_TEST(!constant_time_equal("abc", "abcd"));
}

BOOST_AUTO_TEST_CASE(iso8601_parse_and_format) {
  int64_t t = 0;
  BOOST_REQUIRE(parse_iso8601("2025-03-01T17:01:30Z", &t));
  BOOST_TEST(t == 1740848490);
  BOOST_TEST(format_iso8601(t) == "2025-03-01T17:01:30Z");
  BOOST_REQUIRE(parse_iso8601("2025-02-11T17:34:04.569203Z", &t));  // /teams carries microseconds
  BOOST_TEST(format_iso8601(t) == "2025-02-11T17:34:04Z");
  BOOST_REQUIRE(parse_iso8601("2025-03-01T18:01:30+01:00", &t));
  BOOST_TEST(t == 1740848490);
  BOOST_TEST(!parse_iso8601("2025-03-01 17:01:30", &t));
  BOOST_TEST(!parse_iso8601("2025-13-01T17:01:30Z", &t));
  BOOST_TEST(!parse_iso8601("2025-03-01T17:01:30Zjunk", &t));
  // Shapes off the exact "YYYY-MM-DDTHH:MM:SS" read the same as before its fast path (sscanf's).
  BOOST_REQUIRE(parse_iso8601("2025-3-1T17:01:30Z", &t));
  BOOST_TEST(t == 1740848490);
  BOOST_REQUIRE(parse_iso8601(" 2025-03-01T17:01:30z", &t));
  BOOST_TEST(t == 1740848490);
  BOOST_REQUIRE(parse_iso8601("2025-03-01T16:31:30-00:30", &t));
  BOOST_TEST(t == 1740848490);
  BOOST_TEST(!parse_iso8601("2025-03-01T17:01:3", &t));
  BOOST_TEST(!parse_iso8601("2025-03-01T17:61:30Z", &t));
  BOOST_TEST(!parse_iso8601("2025-03-01T17:01:30", &t));
  BOOST_TEST(!parse_iso8601("2025-03-01T17:01:30.Z5", &t));
  BOOST_TEST(!parse_iso8601("", &t));
}

BOOST_AUTO_TEST_CASE(html_escape_and_http_ascii_helpers) {
  BOOST_TEST(html_escape(R"(<a href="x?a=1&b='2'">)") == "&lt;a href=&quot;x?a=1&amp;b=&#39;2&#39;&quot;&gt;");
  BOOST_TEST(ascii_iequals("Content-Length", "content-LENGTH"));
  BOOST_TEST(!ascii_iequals("chunked", "chunke"));
  BOOST_TEST(!ascii_iequals("\xC4", "\xE4"));  // bytes outside ASCII are compared as they are
  BOOST_TEST(trim_ows(" \t value \t") == "value");
  BOOST_TEST(trim_ows(" \t ").empty());
  BOOST_TEST(trim_ows("a b") == "a b");
}

// Text that goes into JSON or a PostgreSQL text value: cut on a character, ill-formed bytes and NUL
// replaced.
BOOST_AUTO_TEST_CASE(utf8_text_cuts_on_characters_and_replaces_ill_formed_bytes) {
  using fb::detail::utf8_text;
  BOOST_TEST(utf8_text("plain ascii") == "plain ascii");
  BOOST_TEST(utf8_text("caf\xC3\xA9", 4) == "caf");             // not half of the é
  BOOST_TEST(utf8_text("caf\xC3\xA9", 5) == "caf\xC3\xA9");
  BOOST_TEST(utf8_text("\xF0\x9F\x98\x80x", 3).empty());       // a 4-byte emoji does not fit in 3
  BOOST_TEST(utf8_text("a\xFF" "b") == "a\xEF\xBF\xBD" "b");        // a byte that starts nothing
  BOOST_TEST(utf8_text("a\xC3") == "a\xEF\xBF\xBD");             // a character cut by someone else
  BOOST_TEST(utf8_text("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // an overlong '/'
  BOOST_TEST(utf8_text("\xED\xA0\x80").size() == 9u);           // a surrogate: three replacements
  using fb::detail::utf8_excerpt;
  BOOST_TEST(utf8_excerpt("short", 5) == "short");                 // all of it: no marker
  BOOST_TEST(utf8_excerpt("caf\xC3\xA9s", 5, "[cut]") == "caf\xC3\xA9[cut]");
  BOOST_TEST(utf8_excerpt("caf\xC3\xA9", 4) == "caf...");            // the cut falls before the é
  // Four ill-formed bytes are twelve bytes of text: cut, although only four bytes were given.
  BOOST_TEST(utf8_excerpt("\xFF\xFF\xFF\xFF", 6) == "\xEF\xBF\xBD\xEF\xBF\xBD...");
  BOOST_TEST(utf8_text("a\xFF", 3) == "a");                       // a replacement that does not fit
  BOOST_TEST(utf8_text("abc", 0).empty());
  // NUL: well-formed UTF-8, but PostgreSQL's text cannot hold it (the driver refuses such a value),
  // so an error message with one would fail the statement that records it.
  BOOST_TEST(utf8_text(std::string("a\0b", 3)) == "a\xEF\xBF\xBD" "b");
}

BOOST_AUTO_TEST_SUITE_END()
