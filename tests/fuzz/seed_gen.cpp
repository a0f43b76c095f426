// Writes seed inputs for the enrollment and state targets with the library's own serializers,
// so the corpus starts from files exactly as pbx-mfa writes them. Not part of any build:
//   c++ -std=c++20 -I lib/include tests/fuzz/seed_gen.cpp BUILD/lib/libpbx_totp.a -lcrypto \
//       -lqrencode -o /tmp/seed_gen && /tmp/seed_gen tests/fuzz/corpus
#include <fstream>
#include <string>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"

using namespace pbx::totp;

static void put(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string dir = argv[1];
  Enrollment e;
  e.id = "0123456789abcdef0123456789abcdef";
  dev0(e).secret = *base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");  // RFC 6238 SHA1 key
  e.created = 1700000000;
  put(dir + "/enrollment/plain", serialize_enrollment(e));
  dev0(e).algorithm = Algorithm::kSha256;
  dev0(e).digits = 8;
  dev0(e).period = 60;
  dev0(e).secret = *base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA");
  e.recovery.salt = "00112233445566778899aabbccddeeff";
  e.recovery.hashes = {std::string(64, 'a'), std::string(64, 'b'), std::string(64, '0')};
  put(dir + "/enrollment/sha256_recovery", serialize_enrollment(e));

  UserState s;
  s.enrollment_id = "0123456789abcdef0123456789abcdef";
  put(dir + "/state/fresh", serialize_state(s));
  mark(s).last_step = 56666666;
  s.failures = 3;
  s.locked_until = 1700000120;
  mark(s).skew = -1;
  s.last_success = 1700000000;
  s.used_recovery = {0, 2};
  s.grace = {{"0123456789abcdef", 1700000000}, {"fedcba9876543210", 1700000100}};
  put(dir + "/state/full", serialize_state(s));
  return 0;
}
