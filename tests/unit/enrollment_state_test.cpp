// The secret file and state file formats: round trips, and damaged text refused as kCorrupt.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::bytes_of;
using testing::has_errc;
using testing::is_ok;
using testing::kCheapKdf;
using testing::kIdA;

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

bool has_key(const std::string& line, std::string_view key) {
  return line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
         line[key.size()] == ' ';
}

// The text with the first `key ...` line replaced by `replacement` (which may hold several
// lines, or be empty to drop the line).
std::string replace_line(std::string_view text, std::string_view key,
                         std::string_view replacement) {
  std::vector<std::string> out;
  bool done = false;
  for (auto& line : split_lines(text)) {
    if (!done && has_key(line, key)) {
      done = true;
      if (!replacement.empty()) out.emplace_back(replacement);
      continue;
    }
    out.push_back(line);
  }
  EXPECT_TRUE(done) << "no line with key " << key << " in:\n" << text;
  return join_lines(out);
}

std::string line_with_key(std::string_view text, std::string_view key) {
  for (auto& line : split_lines(text)) {
    if (has_key(line, key)) return line;
  }
  ADD_FAILURE() << "no line with key " << key;
  return {};
}

// The text with `line` added just before the closing "end" line.
std::string before_end(std::string_view text, std::string_view line) {
  std::string out(text);
  std::size_t end = out.rfind("\nend\n");
  EXPECT_NE(end, std::string::npos) << "no end line in:\n" << text;
  if (end != std::string::npos) out.insert(end + 1, std::string(line) + "\n");
  return out;
}

// The text with the first `key ...` line written twice.
std::string duplicate_line(std::string_view text, std::string_view key) {
  std::string line = line_with_key(text, key);
  return replace_line(text, key, line + "\n" + line);
}

Enrollment full_enrollment() {
  Enrollment e;
  e.id = std::string(kIdA);
  dev0(e).secret = bytes_of("0123456789abcdefghijklmnopqrstuv");  // 32 bytes, for SHA256
  dev0(e).algorithm = Algorithm::kSha256;
  dev0(e).digits = 8;
  dev0(e).period = 60;
  e.created = 1700000123;
  auto codes = generate_recovery_codes(3);
  EXPECT_TRUE(is_ok(codes));
  auto set = hash_recovery_codes(codes.value(), kCheapKdf);
  EXPECT_TRUE(is_ok(set));
  e.recovery = set.value();
  return e;
}

// The secret file as the release before devices wrote it (version 1): still read, so its
// damaged forms must still be refused.
std::string v1_text(const Enrollment& e) {
  const Device& d = dev0(e);
  std::string s = "# pbx-mfa secret file: written by pbx-mfa, do not edit\nversion 1\n";
  s += "id " + e.id + "\n";
  s += "secret " + base32_encode(d.secret, false) + "\n";
  s += std::string("algorithm ") + algorithm_name(d.algorithm) + "\n";
  s += "digits " + std::to_string(d.digits) + "\n";
  s += "period " + std::to_string(d.period) + "\n";
  s += "created " + std::to_string(e.created) + "\n";
  if (!e.recovery.hashes.empty()) {
    s += "recovery-salt " + e.recovery.salt + "\n";
    s += "recovery-kdf " + kdf_text(e.recovery.kdf) + "\n";
    for (const auto& h : e.recovery.hashes) s += "recovery " + h + "\n";
  }
  return s + "end\n";
}

// The state file as the release before devices wrote it (version 1).
std::string v1_state_text(const UserState& st) {
  const DeviceMark m = mark(st);
  std::string s = "version 1\nid " + st.enrollment_id + "\n";
  s += "last-step " + std::to_string(m.last_step) + "\n";
  s += "failures " + std::to_string(st.failures) + "\n";
  s += "locked-until " + std::to_string(st.locked_until) + "\n";
  s += "skew " + std::to_string(m.skew) + "\n";
  s += "last-success " + std::to_string(st.last_success) + "\n";
  if (!st.used_recovery.empty()) {
    std::string list;
    for (int i : st.used_recovery) list += (list.empty() ? "" : ",") + std::to_string(i);
    s += "used-recovery " + list + "\n";
  }
  for (const auto& g : st.grace) s += "grace " + g.host + " " + std::to_string(g.at) + "\n";
  return s + "end\n";
}

void expect_same_enrollment(const Enrollment& a, const Enrollment& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_TRUE(dev0(a).secret == dev0(b).secret);
  EXPECT_EQ(dev0(a).secret.size(), dev0(b).secret.size());
  EXPECT_EQ(dev0(a).algorithm, dev0(b).algorithm);
  EXPECT_EQ(dev0(a).digits, dev0(b).digits);
  EXPECT_EQ(dev0(a).period, dev0(b).period);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.recovery.salt, b.recovery.salt);
  EXPECT_EQ(a.recovery.kdf.n, b.recovery.kdf.n);
  EXPECT_EQ(a.recovery.kdf.r, b.recovery.kdf.r);
  EXPECT_EQ(a.recovery.kdf.p, b.recovery.kdf.p);
  EXPECT_EQ(a.recovery.hashes, b.recovery.hashes);
}

// ---------------------------------------------------------------------------------------------
// Enrollment (the secret file)

TEST(EnrollmentFormat, RoundTripKeepsEveryField) {
  Enrollment e = full_enrollment();
  auto parsed = parse_enrollment(serialize_enrollment(e));
  ASSERT_TRUE(is_ok(parsed));
  expect_same_enrollment(e, parsed.value());
}

TEST(EnrollmentFormat, RoundTripEveryAlgorithmDigitsAndPeriod) {
  struct Case {
    Algorithm algorithm;
    std::size_t key_size;
    int digits;
    int period;
  };
  for (const Case& c : {Case{Algorithm::kSha1, 20, 6, 30}, Case{Algorithm::kSha256, 32, 7, 15},
                        Case{Algorithm::kSha512, 64, 8, 300}, Case{Algorithm::kSha1, 10, 8, 1}}) {
    Enrollment e = full_enrollment();
    dev0(e).algorithm = c.algorithm;
    dev0(e).secret = SecretBytes(c.key_size);
    for (std::size_t i = 0; i < c.key_size; ++i) {
      dev0(e).secret.data()[i] = static_cast<std::uint8_t>(i * 37 + 1);
    }
    dev0(e).digits = c.digits;
    dev0(e).period = c.period;
    auto parsed = parse_enrollment(serialize_enrollment(e));
    ASSERT_TRUE(is_ok(parsed)) << algorithm_name(c.algorithm);
    expect_same_enrollment(e, parsed.value());
  }
}

TEST(EnrollmentFormat, RoundTripWithoutRecoveryCodes) {
  Enrollment e = full_enrollment();
  auto set = hash_recovery_codes({}, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  e.recovery = set.value();
  auto parsed = parse_enrollment(serialize_enrollment(e));
  ASSERT_TRUE(is_ok(parsed));
  // Salt and cost of an empty set mean nothing; everything else must survive.
  e.recovery = parsed->recovery;
  expect_same_enrollment(e, parsed.value());
  EXPECT_TRUE(parsed->recovery.hashes.empty());
}

TEST(EnrollmentFormat, FileIsVersionedAndNeverHoldsPlainRecoveryCodes) {
  Enrollment e;
  e.id = std::string(kIdA);
  dev0(e).secret = bytes_of("12345678901234567890");
  auto codes = generate_recovery_codes(5);
  ASSERT_TRUE(is_ok(codes));
  auto set = hash_recovery_codes(codes.value(), kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  e.recovery = set.value();
  std::string text = serialize_enrollment(e);
  EXPECT_NE(text.find("version 2\n"), std::string::npos) << text;
  for (const auto& code : codes.value()) {
    EXPECT_EQ(text.find(code.str()), std::string::npos) << "plain recovery code in the file";
    SecretString normal = normalize_recovery_code(code.view());
    EXPECT_EQ(text.find(normal.str()), std::string::npos) << "plain recovery code in the file";
  }
  EXPECT_EQ(text.find('\0'), std::string::npos);
}

TEST(EnrollmentFormat, CommentsAndBlankLinesAreIgnored) {
  Enrollment e = full_enrollment();
  std::string text = serialize_enrollment(e);
  std::string id_line = line_with_key(text, "id");
  text = replace_line(text, "id", "# written by hand\n\n" + id_line + "\n# another comment");
  auto parsed = parse_enrollment("# leading comment\n" + text);
  ASSERT_TRUE(is_ok(parsed));
  expect_same_enrollment(e, parsed.value());
}

TEST(EnrollmentFormat, EveryTruncationIsCorrupt) {
  // Whatever a torn write or a full disk could leave: refused, never a shorter valid file.
  std::string text = serialize_enrollment(full_enrollment());
  ASSERT_GT(text.size(), 100U);
  for (std::size_t n = 0; n + 1 < text.size(); ++n) {
    EXPECT_TRUE(has_errc(parse_enrollment(std::string_view(text).substr(0, n)), Errc::kCorrupt))
        << "first " << n << " bytes";
  }
}

TEST(EnrollmentFormat, MissingFieldsAreCorrupt) {
  std::string text = v1_text(full_enrollment());
  for (const char* key : {"version", "id", "secret", "algorithm", "digits", "period"}) {
    EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, key, "")), Errc::kCorrupt)) << key;
  }
  // Hashes without the salt or the cost they were made with cannot be checked.
  EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, "recovery-salt", "")), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, "recovery-kdf", "")), Errc::kCorrupt));
  // Keys without values.
  for (const char* line : {"id", "secret", "digits", "period", "algorithm"}) {
    EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, line, line)), Errc::kCorrupt)) << line;
  }
}

TEST(EnrollmentFormat, GarbageIsCorrupt) {
  std::string text = v1_text(full_enrollment());
  std::string binary;
  for (int i = 0; i < 512; ++i) binary.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  std::vector<std::string> bad = {
      "hello world\n",
      binary,
      replace_line(text, "version", "version 1 garbage"),
      replace_line(text, "id", "id zzzz56789abcdef0123456789abcdef"),
      replace_line(text, "id", "id"),
      replace_line(text, "secret", "secret 01890189!!"),
      replace_line(text, "secret", "secret"),
      replace_line(text, "algorithm", "algorithm MD5"),
      replace_line(text, "digits", "digits 5"),
      replace_line(text, "digits", "digits 9"),
      replace_line(text, "digits", "digits six"),
      replace_line(text, "digits", "digits 6 7"),
      replace_line(text, "period", "period 0"),
      replace_line(text, "period", "period -30"),
      replace_line(text, "created", "created yesterday"),
      replace_line(text, "recovery-salt", "recovery-salt not-hex!"),
      replace_line(text, "recovery-kdf", "recovery-kdf bcrypt 16384 8 1"),
      replace_line(text, "recovery-kdf", "recovery-kdf scrypt 16384"),
      replace_line(text, "recovery", "recovery xyz"),
      before_end(text, "colour blue"),
      before_end(text, "unknown-key 1"),
      before_end(text, "recovery " + std::string(63, 'a')),
      text + "secret GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",  // after the end line
      text + text,
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_TRUE(has_errc(parse_enrollment(bad[i]), Errc::kCorrupt)) << "case " << i;
  }
}

TEST(EnrollmentFormat, NulBytesAreCorrupt) {
  std::string text = v1_text(full_enrollment());
  std::string in_version = text;
  in_version.insert(in_version.find("version 1") + 9, 1, '\0');
  std::string in_secret = text;
  in_secret.insert(in_secret.find("\nsecret ") + 9, 1, '\0');
  std::string in_digits = replace_line(text, "digits", std::string("digits 6\0", 9));
  std::string at_end = text + std::string(1, '\0');
  std::string nul_line = before_end(text, std::string(1, '\0'));
  for (const std::string& bad : {in_version, in_secret, in_digits, at_end, nul_line}) {
    EXPECT_TRUE(has_errc(parse_enrollment(bad), Errc::kCorrupt));
  }
}

TEST(EnrollmentFormat, UnknownOrMissingVersionIsCorrupt) {
  std::string text = v1_text(full_enrollment());
  // "version 2" has no secret, algorithm, digits or period line: not a version 2 file either.
  for (const char* version : {"version 2", "version 3", "version 0", "version -1", "version 1.0",
                              "version", "version 99999999999999999999"}) {
    EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, "version", version)), Errc::kCorrupt))
        << version;
  }
  EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, "version", "")), Errc::kCorrupt));
}

TEST(EnrollmentFormat, DuplicatedKeysAreCorrupt) {
  std::string text = v1_text(full_enrollment());
  for (const char* key : {"version", "id", "secret", "algorithm", "digits", "period", "created",
                          "recovery-salt", "recovery-kdf"}) {
    EXPECT_TRUE(has_errc(parse_enrollment(duplicate_line(text, key)), Errc::kCorrupt)) << key;
  }
  // A second, different id or secret must not silently win either.
  std::string two_ids =
      replace_line(text, "id", line_with_key(text, "id") + "\nid fedcba9876543210fedcba9876543210");
  EXPECT_TRUE(has_errc(parse_enrollment(two_ids), Errc::kCorrupt));
  std::string two_secrets = replace_line(
      text, "secret", line_with_key(text, "secret") + "\nsecret GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  EXPECT_TRUE(has_errc(parse_enrollment(two_secrets), Errc::kCorrupt));
}

TEST(EnrollmentFormat, HugeNumbersAreCorrupt) {
  std::string text = v1_text(full_enrollment());
  std::vector<std::string> bad = {
      replace_line(text, "digits", "digits 99999999999999999999"),
      replace_line(text, "digits", "digits 4294967302"),  // 6 after a 32-bit wrap
      replace_line(text, "period", "period 18446744073709551646"),
      replace_line(text, "period", "period 4294967326"),  // 30 after a 32-bit wrap
      replace_line(text, "period", "period 100000"),
      replace_line(text, "created", "created 99999999999999999999999"),
      replace_line(text, "recovery-kdf", "recovery-kdf scrypt 18446744073709551616 8 1"),
      replace_line(text, "recovery-kdf", "recovery-kdf scrypt 16384 4294967304 1"),
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_TRUE(has_errc(parse_enrollment(bad[i]), Errc::kCorrupt)) << "case " << i;
  }
}

TEST(EnrollmentFormat, MoreRecoveryCodesThanTheCapAreCorrupt) {
  Enrollment e = full_enrollment();
  e.recovery.hashes.resize(1);
  std::string text = serialize_enrollment(e);
  std::string hash_line = line_with_key(text, "recovery");
  std::string many;
  for (int i = 0; i <= kMaxRecoveryCodes; ++i) many += hash_line + "\n";
  EXPECT_TRUE(is_ok(parse_enrollment(
      replace_line(text, "recovery", many.substr(0, many.size() - hash_line.size() - 2)))))
      << "exactly the cap is fine";
  many.pop_back();
  EXPECT_TRUE(has_errc(parse_enrollment(replace_line(text, "recovery", many)), Errc::kCorrupt));
}

// L3: a damaged secret file is named by its line, never quoted: the token in question may be
// the secret itself (its key forgotten or mistyped), and the message reaches syslog and the
// terminal.
TEST(EnrollmentFormat, ErrorsNeverQuoteTheFile) {
  std::string text = v1_text(full_enrollment());
  std::string secret = line_with_key(text, "secret").substr(7);
  ASSERT_GE(secret.size(), 16u);
  struct Case {
    std::string text;
    std::string line;  // what the message names
  };
  const std::vector<Case> cases = {
      {replace_line(text, "secret", secret), "line 4"},
      {replace_line(text, "secret", "secret=" + secret), "line 4"},
      {replace_line(text, "secret", secret + "\n" + secret), "line 4"},
      {replace_line(text, "version", "version " + secret), "line 2"},
      {before_end(text, secret + " " + secret), "line "},
  };
  for (const auto& c : cases) {
    auto parsed = parse_enrollment(c.text);
    ASSERT_TRUE(has_errc(parsed, Errc::kCorrupt)) << c.text;
    const std::string& message = parsed.error().message;
    EXPECT_NE(message.find(c.line), std::string::npos) << message;
    for (std::size_t i = 0; i + 4 <= secret.size(); ++i) {
      ASSERT_EQ(message.find(secret.substr(i, 4)), std::string::npos)
          << "the message quotes the secret: " << message;
    }
  }
  EXPECT_EQ(parse_enrollment(replace_line(text, "secret", secret)).error().message,
            "secret file: line 4: unknown key");
}

// L4: the file may be the user's, the login runs as root: no more than the built-in cost.
TEST(EnrollmentFormat, RecoveryKdfAboveTheBuiltInCostIsCorrupt) {
  std::string text = serialize_enrollment(full_enrollment());
  for (const char* kdf : {"scrypt 131072 8 16", "scrypt 32768 8 1", "scrypt 16384 16 1",
                          "scrypt 16384 8 2", "scrypt 4194304 64 16", "scrypt 2048 64 2"}) {
    auto parsed =
        parse_enrollment(replace_line(text, "recovery-kdf", std::string("recovery-kdf ") + kdf));
    ASSERT_TRUE(has_errc(parsed, Errc::kCorrupt)) << kdf;
    EXPECT_NE(parsed.error().message.find("costs more than the built-in scrypt 16384 8 1"),
              std::string::npos)
        << parsed.error().message;
  }
  // The built-in cost and anything cheaper still parse (files made with kCheapKdf, say).
  for (const char* kdf : {"scrypt 16384 8 1", "scrypt 1024 8 1", "scrypt 8192 16 1",
                          "scrypt 2048 8 8", "scrypt 2 1 1"}) {
    EXPECT_TRUE(is_ok(
        parse_enrollment(replace_line(text, "recovery-kdf", std::string("recovery-kdf ") + kdf))))
        << kdf;
  }
  EXPECT_TRUE(kdf_within_builtin_cost(KdfParams{}));
  EXPECT_FALSE(kdf_within_builtin_cost(KdfParams{131072, 8, 16}));
}

// ---------------------------------------------------------------------------------------------
// UserState (the state file)

UserState full_state() {
  UserState s;
  s.enrollment_id = std::string(kIdA);
  mark(s).last_step = 56666667;
  s.failures = 3;
  s.locked_until = 1700000400;
  mark(s).skew = -2;
  s.last_success = 1700000010;
  s.used_recovery = {0, 2, 4};
  s.grace = {GraceEntry{"0123456789abcdef0123456789abcdef", 1700000010},
             GraceEntry{"fedcba9876543210fedcba9876543210", 17}};
  return s;
}

void expect_same_state(const UserState& a, const UserState& b) {
  EXPECT_EQ(a.enrollment_id, b.enrollment_id);
  EXPECT_EQ(mark(a).last_step, mark(b).last_step);
  EXPECT_EQ(a.failures, b.failures);
  EXPECT_EQ(a.locked_until, b.locked_until);
  EXPECT_EQ(mark(a).skew, mark(b).skew);
  EXPECT_EQ(a.last_success, b.last_success);
  EXPECT_EQ(a.used_recovery, b.used_recovery);
  ASSERT_EQ(a.grace.size(), b.grace.size());
  for (std::size_t i = 0; i < a.grace.size(); ++i) {
    EXPECT_EQ(a.grace[i].host, b.grace[i].host);
    EXPECT_EQ(a.grace[i].at, b.grace[i].at);
  }
}

TEST(StateFormat, RoundTripKeepsEveryField) {
  UserState s = full_state();
  auto parsed = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(parsed));
  expect_same_state(s, parsed.value());
}

TEST(StateFormat, FreshStateRoundTrips) {
  UserState s;
  s.enrollment_id = std::string(kIdA);
  auto parsed = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(parsed));
  expect_same_state(s, parsed.value());
  EXPECT_EQ(mark(*parsed).last_step, kNoStep);
}

TEST(StateFormat, ExtremeButValidValuesRoundTrip) {
  UserState s = full_state();
  mark(s).last_step = 4102444800LL;  // far future, still a valid step
  s.locked_until = 4102444800LL;
  mark(s).skew = 10;
  s.failures = 1000000;
  s.used_recovery.clear();
  for (int i = 0; i < kMaxRecoveryCodes; ++i) s.used_recovery.push_back(i);
  s.grace.clear();
  for (int i = 0; i < kMaxGraceEntries; ++i) {
    s.grace.push_back(
        GraceEntry{"0011223344556677889900112233" + std::to_string(1000 + i), 1700000000 + i});
  }
  auto parsed = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(parsed));
  expect_same_state(s, parsed.value());

  mark(s).skew = -10;
  parsed = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(parsed));
  EXPECT_EQ(mark(*parsed).skew, -10);
}

// H2: a stored skew beyond the learning bound is clamped when parsed (both stores read state
// with parse_state), so a planted -500 cannot centre the window on a code hours old.
TEST(StateFormat, SkewIsClampedToTheLearningBoundWhenParsed) {
  const std::pair<int, int> cases[] = {{-500, -kMaxSkewSteps},
                                       {500, kMaxSkewSteps},
                                       {-1000, -kMaxSkewSteps},
                                       {1000, kMaxSkewSteps},
                                       {-11, -kMaxSkewSteps},
                                       {11, kMaxSkewSteps},
                                       {-3, -3},
                                       {0, 0}};
  for (auto [stored, expected] : cases) {
    UserState s = full_state();
    mark(s).skew = stored;
    auto parsed = parse_state(serialize_state(s));
    ASSERT_TRUE(is_ok(parsed)) << stored;
    EXPECT_EQ(mark(*parsed).skew, expected) << "stored skew " << stored;
  }
  // Beyond the format's range it stays corrupt, as before.
  UserState s = full_state();
  mark(s).skew = 1001;
  EXPECT_TRUE(has_errc(parse_state(serialize_state(s)), Errc::kCorrupt));
}

TEST(StateFormat, EveryTruncationIsCorrupt) {
  // A shorter valid state could forget failures or a lockout: refused instead.
  std::string text = serialize_state(full_state());
  for (std::size_t n = 0; n + 1 < text.size(); ++n) {
    EXPECT_TRUE(has_errc(parse_state(std::string_view(text).substr(0, n)), Errc::kCorrupt))
        << "first " << n << " bytes";
  }
}

TEST(StateFormat, MissingFieldsAreCorrupt) {
  std::string text = v1_state_text(full_state());
  // Without these a damaged file would silently unlock the user or reopen used codes.
  for (const char* key : {"version", "id", "failures", "locked-until", "last-step"}) {
    EXPECT_TRUE(has_errc(parse_state(replace_line(text, key, "")), Errc::kCorrupt)) << key;
  }
  for (const char* line : {"failures", "last-step", "locked-until", "skew", "used-recovery"}) {
    EXPECT_TRUE(has_errc(parse_state(replace_line(text, line, line)), Errc::kCorrupt)) << line;
  }
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "failures", "failures ")), Errc::kCorrupt));
  EXPECT_TRUE(
      has_errc(parse_state(replace_line(text, "grace", "grace 0123456789abcdef0123456789abcdef")),
               Errc::kCorrupt));
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "used-recovery", "used-recovery 1,")),
                       Errc::kCorrupt));
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "used-recovery", "used-recovery ,")),
                       Errc::kCorrupt));
}

TEST(StateFormat, GarbageIsCorrupt) {
  std::string text = v1_state_text(full_state());
  std::string binary;
  for (int i = 0; i < 512; ++i) binary.push_back(static_cast<char>((i * 97 + 3) & 0xff));
  std::vector<std::string> bad = {
      "hello world\n",
      binary,
      replace_line(text, "failures", "failures three"),
      replace_line(text, "failures", "failures 3 4"),
      replace_line(text, "failures", "failures 0x10"),
      replace_line(text, "failures", "failures -1"),
      replace_line(text, "skew", "skew 1.5"),
      replace_line(text, "last-step", "last-step now"),
      replace_line(text, "locked-until", "locked-until 12abc"),
      replace_line(text, "used-recovery", "used-recovery a,b"),
      replace_line(text, "used-recovery", "used-recovery -1"),
      replace_line(text, "grace", "grace 0123456789abcdef0123456789abcdef soon"),
      replace_line(text, "grace", "grace example.org 1700000000"),
      before_end(text, "colour blue"),
      text + "failures 0\n",  // after the end line
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_TRUE(has_errc(parse_state(bad[i]), Errc::kCorrupt)) << "case " << i;
  }
}

TEST(StateFormat, NulBytesAreCorrupt) {
  std::string text = v1_state_text(full_state());
  std::string in_version = text;
  in_version.insert(in_version.find("version 1") + 9, 1, '\0');
  std::string in_failures = replace_line(text, "failures", std::string("failures 3\0", 11));
  std::string at_end = text + std::string(1, '\0');
  for (const std::string& bad : {in_version, in_failures, at_end}) {
    EXPECT_TRUE(has_errc(parse_state(bad), Errc::kCorrupt));
  }
}

TEST(StateFormat, UnknownOrMissingVersionIsCorrupt) {
  std::string text = v1_state_text(full_state());
  for (const char* version : {"version 2", "version 3", "version 0", "version 1.0", "version"}) {
    EXPECT_TRUE(has_errc(parse_state(replace_line(text, "version", version)), Errc::kCorrupt))
        << version;
  }
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "version", "")), Errc::kCorrupt));
}

TEST(StateFormat, DuplicatedKeysAreCorrupt) {
  std::string text = v1_state_text(full_state());
  for (const char* key : {"version", "id", "last-step", "failures", "locked-until", "skew",
                          "last-success", "used-recovery"}) {
    EXPECT_TRUE(has_errc(parse_state(duplicate_line(text, key)), Errc::kCorrupt)) << key;
  }
  // A second failures line must not be able to reset the count.
  std::string reset = replace_line(text, "failures", "failures 3\nfailures 0");
  EXPECT_TRUE(has_errc(parse_state(reset), Errc::kCorrupt));
}

TEST(StateFormat, ErrorsNeverQuoteTheFile) {
  std::string text = v1_state_text(full_state());
  const std::string token = "QZ2EFCDKTZAJGGZCJSIY37ZLJEESZVGP";
  for (const std::string& bad : {before_end(text, token), before_end(text, token + " 1"),
                                 before_end(text, token + "\n" + token),
                                 replace_line(text, "version", "version " + token)}) {
    auto parsed = parse_state(bad);
    ASSERT_TRUE(has_errc(parsed, Errc::kCorrupt)) << bad;
    EXPECT_EQ(parsed.error().message.find(token.substr(0, 6)), std::string::npos)
        << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("line "), std::string::npos) << parsed.error().message;
  }
}

TEST(StateFormat, HugeNumbersAreCorrupt) {
  std::string text = v1_state_text(full_state());
  std::vector<std::string> bad = {
      replace_line(text, "failures", "failures 99999999999999999999"),
      replace_line(text, "failures", "failures 4294967297"),  // 1 after a 32-bit wrap
      replace_line(text, "last-step", "last-step 9223372036854775808"),
      replace_line(text, "last-step", "last-step 99999999999999999999999999"),
      replace_line(text, "locked-until", "locked-until 99999999999999999999999"),
      replace_line(text, "skew", "skew 2147483648"),
      replace_line(text, "skew", "skew -99999999999999999999"),
      replace_line(text, "last-success", "last-success 18446744073709551616"),
      replace_line(text, "used-recovery", "used-recovery 4294967296"),
      replace_line(text, "used-recovery", "used-recovery 999999"),
      replace_line(text, "grace", "grace 0123456789abcdef0123456789abcdef 99999999999999999999"),
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_TRUE(has_errc(parse_state(bad[i]), Errc::kCorrupt)) << "case " << i;
  }
}

TEST(StateFormat, VersionOneTextReadsAsTheSameState) {
  UserState s = full_state();
  auto parsed = parse_state(v1_state_text(s));
  ASSERT_TRUE(is_ok(parsed));
  expect_same_state(s, parsed.value());
  EXPECT_EQ(mark(*parsed).created, kAnyCreated);
}

TEST(StateFormat, BadDeviceMarksAreCorrupt) {
  std::string text = serialize_state(full_state());
  for (const char* line :
       {"device default", "device default -1 5 0", "device default -1 5 0 0 0",
        "device Bad -1 5 0 0", "device default -2 5 0 0", "device default -1 -2 0 0",
        "device default -1 5 1001 0", "device default -1 5 0 -1", "device default x 5 0 0",
        "device  -1 5 0 0"}) {
    EXPECT_TRUE(has_errc(parse_state(replace_line(text, "device", line)), Errc::kCorrupt)) << line;
  }
  EXPECT_TRUE(has_errc(parse_state(duplicate_line(text, "device")), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(parse_state(before_end(text, "last-step 5")), Errc::kCorrupt))
      << "version 2 has no last-step";
  std::string six;
  for (int i = 0; i < 6; ++i) six += "device d" + std::to_string(i) + " 1 5 0 0\n";
  six.pop_back();
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "device", six)), Errc::kCorrupt));
}

TEST(StateFormat, MoreGraceEntriesThanTheCapAreCorrupt) {
  std::string text = serialize_state(full_state());
  std::string many;
  for (int i = 0; i <= kMaxGraceEntries + 100; ++i) {
    many += "grace 0011223344556677889900112233" + std::to_string(1000 + i) + " 1700000000\n";
  }
  many.pop_back();
  EXPECT_TRUE(has_errc(parse_state(replace_line(text, "grace", many)), Errc::kCorrupt));
}

}  // namespace
}  // namespace pbx::totp
