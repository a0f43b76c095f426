// The HMAC behind every code (lib/src/hmac.cpp, RFC 2104 over OpenSSL's low-level SHA functions,
// issue 20) against RFC 2202 and RFC 4231 in full and against OpenSSL's EVP_MAC for random keys
// and messages; detail::sha256 against FIPS 180 and EVP_Digest.
#include "hmac.hpp"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hex_text.hpp"
#include "pbx/totp/hotp.hpp"

namespace pbx::totp {
namespace {

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
std::vector<std::uint8_t> repeat(std::uint8_t b, std::size_t n) { return std::vector(n, b); }

using pbx::testing::hex;

// Our MAC in hex, or "failed".
std::string our_mac(Algorithm a, const std::vector<std::uint8_t>& key,
                    const std::vector<std::uint8_t>& msg) {
  Hmac h(a, SecretBytes(key.data(), key.size()));
  if (!h.ok()) return "not ok";
  std::uint8_t out[64];
  std::size_t n = h.mac(msg.data(), msg.size(), out);
  return n == 0 ? "failed" : hex(out, n);
}

struct Vector {
  const char* name;
  std::vector<std::uint8_t> key;
  std::vector<std::uint8_t> data;
  const char* sha1;    // RFC 2202 (nullptr: not one of its cases)
  const char* sha256;  // RFC 4231; test case 5 gives only the first 128 bits
  const char* sha512;
};

std::vector<std::uint8_t> key_1_to_25() {
  std::vector<std::uint8_t> k;
  for (std::uint8_t i = 1; i <= 25; ++i) k.push_back(i);
  return k;
}

std::vector<Vector> rfc_vectors() {
  return {
      {"case 1", repeat(0x0b, 20), bytes("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eae"
       "a3f4e4be9d914eeb61f1702e696c203a126854"},
      {"case 2", bytes("Jefe"), bytes("what do ya want for nothing?"),
       "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8"
       "f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
      {"case 3", repeat(0xaa, 20), repeat(0xdd, 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
       "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e"
       "67c807b946a337bee8942674278859e13292fb"},
      {"case 4", key_1_to_25(), repeat(0xcd, 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
       "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5"
       "788063a5f19741120c4f2de2adebeb10a298dd"},
      {"case 5", repeat(0x0c, 20), bytes("Test With Truncation"),
       "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04", "a3b6167473100ee06e0c796c2955552b",
       "415fad6271580a531d4179bc891d87a6"},
      // RFC 2202 cases 6 and 7: an 80-byte key, longer than SHA-1's 64-byte block.
      {"RFC 2202 case 6", repeat(0xaa, 80),
       bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
       "aa4ae5e15272d00e95705637ce8a3b55ed402112", nullptr, nullptr},
      {"RFC 2202 case 7", repeat(0xaa, 80),
       bytes("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
       "e8e99d0f45237d786d6bbaa7965c7808bbff1a91", nullptr, nullptr},
      // RFC 4231 cases 6 and 7: a 131-byte key, longer than SHA-512's 128-byte block.
      {"RFC 4231 case 6", repeat(0xaa, 131),
       bytes("Test Using Larger Than Block-Size Key - Hash Key First"), nullptr,
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
       "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d"
       "6a1e5295e64f73f63f0aec8b915a985d786598"},
      {"RFC 4231 case 7", repeat(0xaa, 131),
       bytes("This is a test using a larger than block-size key and a larger than block-size data. "
             "The key needs to be hashed before being used by the HMAC algorithm."),
       nullptr, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
       "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3"
       "e4de15134676fb6de0446065c97440fa8c6a58"},
  };
}

void expect_vector(Algorithm a, const Vector& v, const char* expected) {
  if (expected == nullptr) return;
  std::string got = our_mac(a, v.key, v.data);
  // RFC 4231 test case 5 lists a truncated output: compare its prefix.
  EXPECT_EQ(got.substr(0, std::string_view(expected).size()), expected)
      << algorithm_name(a) << ", " << v.name;
}

TEST(Hmac, Rfc2202Sha1) {
  for (const auto& v : rfc_vectors()) expect_vector(Algorithm::kSha1, v, v.sha1);
}

TEST(Hmac, Rfc4231Sha256) {
  for (const auto& v : rfc_vectors()) expect_vector(Algorithm::kSha256, v, v.sha256);
}

TEST(Hmac, Rfc4231Sha512) {
  for (const auto& v : rfc_vectors()) expect_vector(Algorithm::kSha512, v, v.sha512);
}

TEST(Hmac, WritesTheDigestLength) {
  std::uint8_t out[64];
  std::vector<std::uint8_t> msg = bytes("x");
  for (auto [a, size] : {std::pair{Algorithm::kSha1, 20U}, std::pair{Algorithm::kSha256, 32U},
                         std::pair{Algorithm::kSha512, 64U}}) {
    Hmac h(a, SecretBytes(msg.data(), msg.size()));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h.mac(msg.data(), msg.size(), out), size) << algorithm_name(a);
  }
}

// OpenSSL's EVP_MAC HMAC, the implementation the module used before issue 20.
class EvpHmac {
 public:
  explicit EvpHmac(Algorithm a) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    EVP_MAC_free(mac);
    std::string digest = algorithm_name(a);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest.data(), 0),
        OSSL_PARAM_construct_end()};
    if (ctx_ != nullptr && EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~EvpHmac() { EVP_MAC_CTX_free(ctx_); }
  EvpHmac(const EvpHmac&) = delete;
  EvpHmac& operator=(const EvpHmac&) = delete;
  bool ok() const { return ctx_ != nullptr; }

  std::string mac(const std::vector<std::uint8_t>& key, const std::vector<std::uint8_t>& msg) {
    static const std::uint8_t kNone = 0;
    std::uint8_t out[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (EVP_MAC_init(ctx_, key.empty() ? &kNone : key.data(), key.size(), nullptr) != 1 ||
        EVP_MAC_update(ctx_, msg.data(), msg.size()) != 1 ||
        EVP_MAC_final(ctx_, out, &len, sizeof out) != 1) {
      return "EVP failed";
    }
    return hex(out, len);
  }

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

// Every key length 0..200 (around each block size: 64 for SHA-1/256, 128 for SHA-512, and the
// hashed-key lengths above) with messages of every length 0..200, several per key through one
// Hmac (a prepared key must survive its use), against EVP_MAC on the same random bytes.
TEST(Hmac, MatchesEvpMacForRandomKeysAndMessages) {
  std::mt19937 rng(20);  // fixed: a failure is reproducible
  std::uniform_int_distribution<int> byte(0, 255);
  auto random_bytes = [&](std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(byte(rng));
    return v;
  };
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    EvpHmac evp(a);
    ASSERT_TRUE(evp.ok()) << algorithm_name(a);
    int compared = 0;
    for (std::size_t key_size = 0; key_size <= 200; ++key_size) {
      std::vector<std::uint8_t> key = random_bytes(key_size);
      Hmac ours(a, SecretBytes(key.data(), key.size()));
      ASSERT_TRUE(ours.ok()) << algorithm_name(a) << " key size " << key_size;
      // Message lengths: all of 0..200 over consecutive keys, eleven per key.
      for (std::size_t j = 0; j < 11; ++j) {
        std::size_t msg_size = (key_size * 11 + j) % 201;
        std::vector<std::uint8_t> msg = random_bytes(msg_size);
        std::uint8_t out[64];
        std::size_t n = ours.mac(msg.data(), msg.size(), out);
        ASSERT_EQ(n == 0 ? "failed" : hex(out, n), evp.mac(key, msg))
            << algorithm_name(a) << ", key size " << key_size << ", message size " << msg_size;
        ++compared;
      }
    }
    EXPECT_EQ(compared, 201 * 11);
  }
}

TEST(Hmac, EmptyKeyMatchesEvpMac) {
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    EvpHmac evp(a);
    ASSERT_TRUE(evp.ok());
    EXPECT_EQ(our_mac(a, {}, bytes("message")), evp.mac({}, bytes("message"))) << algorithm_name(a);
  }
}

std::string sha256_hex(std::string_view s) {
  auto sum = detail::sha256(s);
  if (!sum) return "(failed)";
  const auto& md = *sum;
  return hex(md.data(), md.size());
}

// FIPS 180-2 appendix B examples.
TEST(Sha256, Fips180Examples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, MatchesEvpDigest) {
  std::mt19937 rng(256);
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t n = 0; n <= 300; ++n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(byte(rng));
    std::uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ASSERT_EQ(EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr), 1);
    EXPECT_EQ(sha256_hex(s), hex(md, len)) << "length " << n;
  }
}

}  // namespace
}  // namespace pbx::totp
