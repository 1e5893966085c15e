#include <boost/test/unit_test.hpp>

#include "crypto/encoding.h"
#include "crypto/sealer.h"

using namespace fb::detail;

namespace {
SecretString key_of(char fill) { return SecretString(std::string(32, fill)); }
}  // namespace

BOOST_AUTO_TEST_SUITE(sealer)

BOOST_AUTO_TEST_CASE(round_trip_with_fresh_nonce) {
  Sealer s;
  BOOST_REQUIRE(s.add_key("k1", key_of('a')).ok());
  SecretString token("fa_at_example_token_value");
  auto a = s.seal(token, "integration/1/access_token");
  auto b = s.seal(token, "integration/1/access_token");
  BOOST_REQUIRE(a.ok());
  BOOST_REQUIRE(b.ok());
  BOOST_TEST(*a != *b);  // a fresh nonce per seal
  BOOST_TEST(a->find("fa_at_example_token_value") == std::string::npos);
  auto opened = s.open(*a, "integration/1/access_token");
  BOOST_REQUIRE(opened.ok());
  BOOST_TEST(opened->reveal() == "fa_at_example_token_value");
}

BOOST_AUTO_TEST_CASE(aad_binds_blob_to_its_place) {
  Sealer s;
  BOOST_REQUIRE(s.add_key("k1", key_of('a')).ok());
  auto blob = s.seal(SecretString("secret"), "integration/1/refresh_token");
  BOOST_REQUIRE(blob.ok());
  auto moved = s.open(*blob, "integration/2/refresh_token");
  BOOST_TEST(moved.code() == fb::Code::kRejected);
}

BOOST_AUTO_TEST_CASE(tampering_and_truncation_are_refused) {
  Sealer s;
  BOOST_REQUIRE(s.add_key("k1", key_of('a')).ok());
  auto blob = s.seal(SecretString("secret"), "x");
  BOOST_REQUIRE(blob.ok());
  std::string bad = *blob;
  bad[bad.size() - 20] ^= 1;
  BOOST_TEST(s.open(bad, "x").code() == fb::Code::kRejected);
  BOOST_TEST(s.open(blob->substr(0, 10), "x").code() == fb::Code::kMalformed);
  BOOST_TEST(s.open("plaintext", "x").code() == fb::Code::kMalformed);
}

BOOST_AUTO_TEST_CASE(key_rotation_opens_old_blobs_and_seals_with_new_key) {
  Sealer old_only;
  BOOST_REQUIRE(old_only.add_key("2025", key_of('a')).ok());
  auto old_blob = old_only.seal(SecretString("rt"), "x");
  BOOST_REQUIRE(old_blob.ok());

  Sealer rotated;
  BOOST_REQUIRE(rotated.add_key("2026", key_of('b')).ok());
  BOOST_REQUIRE(rotated.add_key("2025", key_of('a')).ok());
  BOOST_TEST(rotated.active_key_id() == "2026");
  auto opened = rotated.open(*old_blob, "x");
  BOOST_REQUIRE(opened.ok());
  BOOST_TEST(opened->reveal() == "rt");
  auto resealed = rotated.seal(*opened, "x");
  BOOST_REQUIRE(resealed.ok());
  BOOST_TEST(Sealer::key_id_of(*resealed) == "2026");
  BOOST_TEST(old_only.open(*resealed, "x").code() == fb::Code::kNotFound);
}

BOOST_AUTO_TEST_CASE(key_specs_are_checked_without_echoing_the_key) {
  std::string id;
  SecretString key;
  std::string good = base64_encode(std::string(32, 'z'));
  BOOST_TEST(parse_key_spec(good, &id, &key).ok());
  BOOST_TEST(id == "k1");
  BOOST_TEST(parse_key_spec("prod-2026:" + good, &id, &key).ok());
  BOOST_TEST(id == "prod-2026");
  auto short_key = parse_key_spec(base64_encode(std::string(16, 'z')), &id, &key);
  BOOST_TEST(short_key.code() == fb::Code::kConfig);
  BOOST_TEST(short_key.message().find("32 bytes") != std::string::npos);
  auto not_b64 = parse_key_spec("not base64!!", &id, &key);
  BOOST_TEST(not_b64.code() == fb::Code::kConfig);
  BOOST_TEST(not_b64.message().find("not base64") == std::string::npos);  // the value is not echoed
  Sealer s;
  BOOST_TEST(s.add_key("k", SecretString("short")).code() == fb::Code::kInvalidArgument);
  BOOST_TEST(s.seal(SecretString("x"), "").code() == fb::Code::kFailedPrecondition);
}

BOOST_AUTO_TEST_SUITE_END()
