// Standard Webhooks verification: the two vectors of fathom-api.md 5.3 (checked there against the
// standardwebhooks 1.1.1 and svix 1.99.1 npm libraries) and every way a delivery can be wrong.
#define BOOST_TEST_MODULE fb_webhooks_unit
#include <boost/test/unit_test.hpp>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "fixture.h"
#include "server/http_server.h"

using namespace fb;
using namespace fb::detail;
using fb::test::HeaderList;

namespace {

SigningKey key_of(const char* secret) {
  auto k = SigningKey::from_secret(SecretString(secret));
  BOOST_REQUIRE(k.ok());
  return std::move(*k);
}

VerifyResult verify(const HeaderList& h, const std::string& body, const SigningKey& key, int64_t now_s,
                    int64_t tolerance = 300) {
  return verify_delivery(find_delivery_headers(h), body, key, {now_s, tolerance});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(verifier)

BOOST_AUTO_TEST_CASE(canonical_standard_webhooks_vector) {
  SigningKey key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string body = R"({"test": 2432232314})";
  BOOST_TEST(key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body) ==
             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  HeaderList h = {{"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
                  {"webhook-timestamp", "1614265330"},
                  {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
  BOOST_TEST((verify(h, body, key, 1614265330) == VerifyResult::kOk));
  // The same bytes re-serialised without the space are another message.
  BOOST_TEST((verify(h, R"({"test":2432232314})", key, 1614265330) == VerifyResult::kBadSignature));
}

BOOST_AUTO_TEST_CASE(synthetic_fathom_vector) {
  SigningKey key = key_of("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY");
  const std::string body = R"({"recording_id":123456789,"title":"Vector test"})";
  HeaderList h = {{"webhook-id", "msg_2SyntheticExampleId000001"},
                  {"webhook-timestamp", "1740848520"},
                  {"webhook-signature", "v1,6z0X8Q5GLN0fMq+UIIPAz9mJFTLGedv6XItPDDke9vI="}};
  BOOST_TEST((verify(h, body, key, 1740848520) == VerifyResult::kOk));
  // The key is the decoded bytes 0x01..0x18, not the secret text.
  std::string bytes;
  for (int i = 1; i <= 24; ++i) bytes += static_cast<char>(i);
  auto raw = SigningKey::from_bytes(bytes);
  BOOST_REQUIRE(raw.ok());
  BOOST_TEST((verify(h, body, *raw, 1740848520) == VerifyResult::kOk));
  auto text_key = SigningKey::from_bytes("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY");
  BOOST_REQUIRE(text_key.ok());
  BOOST_TEST((verify(h, body, *text_key, 1740848520) == VerifyResult::kBadSignature));
}

BOOST_AUTO_TEST_CASE(svix_header_names_are_accepted) {
  SigningKey key = key_of("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY");
  const std::string body = R"({"recording_id":123456789,"title":"Vector test"})";
  HeaderList h = {{"Svix-Id", "msg_2SyntheticExampleId000001"},
                  {"SVIX-TIMESTAMP", "1740848520"},
                  {"svix-signature", "v1,6z0X8Q5GLN0fMq+UIIPAz9mJFTLGedv6XItPDDke9vI="}};
  BOOST_TEST((verify(h, body, key, 1740848520) == VerifyResult::kOk));
}

BOOST_AUTO_TEST_CASE(any_v1_entry_may_match_and_other_versions_are_ignored) {
  SigningKey current = key_of(fb::test::kSecretA);
  SigningKey other = key_of(fb::test::kSecretB);
  const std::string body = fb::test::meeting_body(7);
  std::string good = current.sign("msg_1", "1700000000", body);
  std::string wrong = other.sign("msg_1", "1700000000", body);
  auto with_sig = [&](const std::string& sig) {
    return HeaderList{{"webhook-id", "msg_1"}, {"webhook-timestamp", "1700000000"}, {"webhook-signature", sig}};
  };
  // Rotation: the sender signs with the old and the new secret; either entry may be ours.
  BOOST_TEST((verify(with_sig(wrong + " " + good), body, current, 1700000000) == VerifyResult::kOk));
  BOOST_TEST((verify(with_sig(good + " " + wrong), body, current, 1700000000) == VerifyResult::kOk));
  BOOST_TEST((verify(with_sig(wrong + " " + good), body, other, 1700000000) == VerifyResult::kOk));
  // A matching signature under another version label does not count.
  std::string v2 = "v2," + good.substr(3);
  BOOST_TEST((verify(with_sig(v2), body, current, 1700000000) == VerifyResult::kBadSignature));
  BOOST_TEST((verify(with_sig("v2,QVBJ " + good), body, current, 1700000000) == VerifyResult::kOk));
  BOOST_TEST((verify(with_sig(good.substr(3)), body, current, 1700000000) == VerifyResult::kBadSignature));
}

BOOST_AUTO_TEST_CASE(several_candidate_keys) {
  SigningKey a = key_of(fb::test::kSecretA);
  SigningKey b = key_of(fb::test::kSecretB);
  const std::string body = fb::test::meeting_body(8);
  auto h = fb::test::signed_headers(fb::test::kSecretB, "msg_2", 1700000000, body);
  const SigningKey* keys[2] = {&a, &b};
  BOOST_TEST((verify_delivery(find_delivery_headers(h), body, keys, 2, {1700000000, 300}) == VerifyResult::kOk));
  BOOST_TEST((verify_delivery(find_delivery_headers(h), body, keys, 1, {1700000000, 300}) ==
              VerifyResult::kBadSignature));
}

BOOST_AUTO_TEST_CASE(tampered_body_and_wrong_secret_fail) {
  SigningKey key = key_of(fb::test::kSecretA);
  const std::string body = fb::test::meeting_body(9);
  auto h = fb::test::signed_headers(fb::test::kSecretA, "msg_3", 1700000000, body);
  BOOST_TEST((verify(h, body, key, 1700000000) == VerifyResult::kOk));
  std::string tampered = body;
  tampered[tampered.find("Weekly")] = 'w';
  BOOST_TEST((verify(h, tampered, key, 1700000000) == VerifyResult::kBadSignature));
  BOOST_TEST((verify(h, body, key_of(fb::test::kSecretB), 1700000000) == VerifyResult::kBadSignature));
  // The id and the timestamp are signed too.
  auto other_id = h;
  other_id[0].second = "msg_4";
  BOOST_TEST((verify(other_id, body, key, 1700000000) == VerifyResult::kBadSignature));
  auto other_ts = h;
  other_ts[1].second = "1700000001";
  BOOST_TEST((verify(other_ts, body, key, 1700000000) == VerifyResult::kBadSignature));
}

BOOST_AUTO_TEST_CASE(timestamp_tolerance_both_ways) {
  SigningKey key = key_of(fb::test::kSecretA);
  const std::string body = fb::test::meeting_body(10);
  const int64_t ts = 1700000000;
  auto h = fb::test::signed_headers(fb::test::kSecretA, "msg_5", ts, body);
  BOOST_TEST((verify(h, body, key, ts + 300) == VerifyResult::kOk));
  BOOST_TEST((verify(h, body, key, ts + 301) == VerifyResult::kStaleTimestamp));
  BOOST_TEST((verify(h, body, key, ts - 300) == VerifyResult::kOk));
  BOOST_TEST((verify(h, body, key, ts - 301) == VerifyResult::kFutureTimestamp));
  BOOST_TEST((verify(h, body, key, ts + 3600, 7200) == VerifyResult::kOk));  // configurable
}

BOOST_AUTO_TEST_CASE(missing_and_malformed_headers) {
  SigningKey key = key_of(fb::test::kSecretA);
  const std::string body = fb::test::meeting_body(11);
  auto full = fb::test::signed_headers(fb::test::kSecretA, "msg_6", 1700000000, body);
  const char* names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
  for (int drop = 0; drop < 3; ++drop) {
    HeaderList h;
    for (int i = 0; i < 3; ++i) {
      if (i != drop) h.push_back(full[static_cast<size_t>(i)]);
    }
    const char* missing = nullptr;
    BOOST_TEST((verify_delivery(find_delivery_headers(h), body, key, {1700000000, 300}, &missing) ==
                VerifyResult::kMissingHeader));
    BOOST_REQUIRE(missing != nullptr);
    BOOST_TEST(std::string(missing) == names[drop]);
  }
  for (const char* bad : {"17e8", "-1700000000", " 1700000000", "1700000000.5", "", "99999999999999999999"}) {
    auto h = full;
    h[1].second = bad;
    VerifyResult r = verify(h, body, key, 1700000000);
    BOOST_TEST((r == VerifyResult::kMalformedTimestamp || (std::string(bad).empty() && r == VerifyResult::kMissingHeader)),
               "timestamp '" << bad << "' gave " << verify_result_name(r));
  }
}

BOOST_AUTO_TEST_CASE(secrets_of_any_length_and_bad_secrets) {
  // The API reference example decodes to 18 bytes: no minimum length is enforced.
  auto short_key = SigningKey::from_secret(SecretString("whsec_x6EV6NIAAz3ldclszNJTwrow"));
  BOOST_REQUIRE(short_key.ok());
  // A key longer than a SHA-256 block is hashed first (RFC 2104): check against OpenSSL's HMAC.
  std::string long_bytes(100, '\x07');
  auto long_key = SigningKey::from_secret(SecretString("whsec_" + base64_encode(long_bytes)));
  BOOST_REQUIRE(long_key.ok());
  auto mac = long_key->mac("id", "1", "body");
  BOOST_TEST(std::string(mac.begin(), mac.end()) == hmac_sha256(long_bytes, "id.1.body"));
  // The prefix is optional, as in the Standard Webhooks libraries.
  auto bare = SigningKey::from_secret(SecretString("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY"));
  BOOST_REQUIRE(bare.ok());
  BOOST_TEST(bare->sign("i", "1", "b") == key_of(fb::test::kSecretA).sign("i", "1", "b"));

  auto bad = SigningKey::from_secret(SecretString("whsec_not*base64"));
  BOOST_TEST((bad.code() == Code::kInvalidArgument));
  BOOST_TEST(bad.status().message().find("not*base64") == std::string::npos);  // never echoes the secret
  BOOST_TEST((SigningKey::from_secret(SecretString("whsec_")).code() == Code::kInvalidArgument));
}

BOOST_AUTO_TEST_CASE(webhook_headers_win_over_svix_only_as_a_complete_set) {
  HeaderList both = {{"webhook-id", "a"}, {"webhook-timestamp", "1"}, {"webhook-signature", "v1,x"},
                     {"svix-id", "b"},    {"svix-timestamp", "2"},    {"svix-signature", "v1,y"}};
  BOOST_TEST(find_delivery_headers(both).id == "a");
  HeaderList partial = {{"webhook-id", "a"}, {"svix-id", "b"}, {"svix-timestamp", "2"}, {"svix-signature", "v1,y"}};
  auto h = find_delivery_headers(partial);
  BOOST_TEST(h.id == "b");
  BOOST_TEST(h.timestamp == "2");
}

// A header given twice: the C ABI took the last line and the sidecar's HTTP server the first, so a
// delivery with signature lines [bad, good] was accepted by one and refused by the other (a strict
// peer's finding). Both take the first line now.
BOOST_AUTO_TEST_CASE(of_a_header_given_twice_the_first_line_counts_as_in_the_http_server) {
  HeaderList twice = {{"webhook-id", "first"},          {"Webhook-Id", "second"}, {"webhook-timestamp", "1"},
                      {"webhook-signature", "v1,good"}, {"webhook-signature", "v1,bad"}};
  auto h = find_delivery_headers(twice);
  BOOST_TEST(h.id == "first");
  BOOST_TEST(h.signature == "v1,good");
  fb::detail::ServerRequest req;
  for (const auto& [k, v] : twice) req.headers.emplace_back(k, v);
  BOOST_TEST(req.header("webhook-id") == h.id);
  BOOST_TEST(req.header("webhook-signature") == h.signature);
}

BOOST_AUTO_TEST_SUITE_END()
