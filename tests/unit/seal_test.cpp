// Sealing under the fleet key, the key file's checks, and this host's break-glass codes.
#include "pbx/totp/seal.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "pbx/totp/break_glass.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::kCheapKdf;
using testing::read_file;
using testing::snapshot;
using testing::snapshot_diff;
using testing::TempDir;
using testing::write_file;

SecretBytes key_of(char fill) {
  std::string k(32, fill);
  return testing::bytes_of(k);
}

// The state MAC (H2): HKDF-SHA256 of the fleet key with info "pbx-mfa state v1", then
// HMAC-SHA256 over user || NUL || enrollment id || NUL || text. Known answer computed with
// Python's hmac/hashlib: a change here would make every fleet's state rows fail.
TEST(StateMac, MatchesTheKnownAnswerAndIsBoundToUserIdAndText) {
  SecretBytes fleet(32);
  for (std::size_t i = 0; i < fleet.size(); ++i) fleet.data()[i] = static_cast<std::uint8_t>(i);
  auto key = derive_fleet_subkey(fleet, kStateMacLabel);
  ASSERT_TRUE(is_ok(key));
  const std::string id = "0123456789abcdef0123456789abcdef";
  const std::string text = "version 1\nend\n";
  auto mac = state_mac(*key, "alice", id, text);
  ASSERT_TRUE(is_ok(mac));
  std::string hex;
  for (unsigned char c : *mac) {
    static const char* kDigits = "0123456789abcdef";
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  EXPECT_EQ(hex, "015d11419b02986530d9a833faff52fa1c104fdbed3dc103e55948d5c83adbdb03");
  EXPECT_TRUE(is_ok(check_state_mac(*key, "alice", id, text, *mac)));
  EXPECT_TRUE(has_errc(check_state_mac(*key, "bob", id, text, *mac), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(check_state_mac(*key, "alice", "", text, *mac), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(check_state_mac(*key, "alice", id, text + " ", *mac), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(check_state_mac(*key, "alice", id, text, mac->substr(1)), Errc::kCorrupt));
  // Moving a byte across the NUL separators changes the MAC.
  EXPECT_TRUE(has_errc(check_state_mac(*key, "alice0", id.substr(1), text, *mac), Errc::kCorrupt));
  auto other = derive_fleet_subkey(key_of('k'), kStateMacLabel);
  ASSERT_TRUE(is_ok(other));
  EXPECT_TRUE(has_errc(check_state_mac(*other, "alice", id, text, *mac), Errc::kCorrupt));
}

TEST(Seal, RoundTripsAndIsRandomised) {
  SecretBytes key = key_of('k');
  auto a = seal(key, "alice", "secret text");
  auto b = seal(key, "alice", "secret text");
  ASSERT_TRUE(is_ok(a));
  ASSERT_TRUE(is_ok(b));
  EXPECT_NE(*a, *b);  // a fresh nonce each time
  EXPECT_EQ(a->find("secret text"), std::string::npos);
  EXPECT_EQ(a->size(), 1 + 12 + 11 + 16U);
  auto opened = open_sealed(key, "alice", *a);
  ASSERT_TRUE(is_ok(opened));
  EXPECT_EQ(opened->view(), "secret text");
}

TEST(Seal, AnotherUserAnotherKeyOrAnyChangedByteIsRefused) {
  SecretBytes key = key_of('k');
  auto box = seal(key, "alice", "secret text");
  ASSERT_TRUE(is_ok(box));
  EXPECT_TRUE(has_errc(open_sealed(key, "bob", *box), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(open_sealed(key, "alice ", *box), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(open_sealed(key_of('K'), "alice", *box), Errc::kCorrupt));
  for (std::size_t i = 0; i < box->size(); ++i) {
    std::string bad = *box;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_TRUE(has_errc(open_sealed(key, "alice", bad), Errc::kCorrupt)) << "byte " << i;
  }
  EXPECT_TRUE(has_errc(open_sealed(key, "alice", box->substr(0, box->size() - 1)), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(open_sealed(key, "alice", ""), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(open_sealed(key, "alice", *box + "x"), Errc::kCorrupt));
}

TEST(FleetKey, CreatedOnceRootOnlyAndExactly32Bytes) {
  TempDir tmp;
  std::string path = tmp / "fleet.key";
  ASSERT_TRUE(is_ok(create_fleet_key(path)));
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400U);
  EXPECT_EQ(st.st_size, 32);
  std::string first = read_file(path).value();
  EXPECT_TRUE(has_errc(create_fleet_key(path), Errc::kExists));  // never replaced
  EXPECT_EQ(read_file(path).value(), first);
  auto key = load_fleet_key(path, 0);
  ASSERT_TRUE(is_ok(key));
  EXPECT_EQ(key->size(), 32U);
}

TEST(FleetKey, HostileKeyFilesAreRefused) {
  PBX_SKIP_UNLESS_ROOT("chowns a file to another user");
  TempDir tmp;
  std::string path = tmp / "fleet.key";
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kIo));  // missing
  ASSERT_TRUE(write_file(path, std::string(31, 'x')));
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));
  ASSERT_TRUE(write_file(path, std::string(33, 'x')));
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));
  ASSERT_TRUE(write_file(path, std::string(32, 'x'), 0640));
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));
  ASSERT_TRUE(write_file(path, std::string(32, 'x'), 0600, 65534, 65534));
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));
  ASSERT_TRUE(write_file(tmp / "real", std::string(32, 'x')));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::symlink((tmp / "real").c_str(), path.c_str()), 0);
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_TRUE(has_errc(load_fleet_key(path, 0), Errc::kUnsafe));  // and does not hang
}

class BreakGlassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.state_dir = tmp_ / "state";
    config_.trusted_uid = 0;
  }
  TempDir tmp_;
  Config config_;
};

TEST_F(BreakGlassTest, EachCodeWorksOnceAndOnlyItsOwnShape) {
  auto codes = make_break_glass_codes(config_, 3, kCheapKdf);
  ASSERT_TRUE(is_ok(codes));
  ASSERT_EQ(codes->size(), 3U);
  for (const auto& c : *codes) {
    EXPECT_EQ(c.view().size(), 19U);  // xxxx-xxxx-xxxx-xxxx
    EXPECT_EQ(std::count(c.view().begin(), c.view().end(), '-'), 3);
  }
  std::string text = read_file(break_glass_path(config_)).value();
  for (const auto& c : *codes) EXPECT_EQ(text.find(c.view()), std::string::npos);  // hashes only
  auto left = break_glass_left(config_);
  ASSERT_TRUE(is_ok(left));
  EXPECT_EQ(*left, 3);

  std::string second((*codes)[1].view());
  std::string upper = second;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  auto used = use_break_glass_code(config_, upper);  // typed in capitals: the same code
  ASSERT_TRUE(is_ok(used));
  EXPECT_TRUE(*used);
  used = use_break_glass_code(config_, second);
  ASSERT_TRUE(is_ok(used));
  EXPECT_FALSE(*used);  // once only
  EXPECT_EQ(*break_glass_left(config_), 2);

  for (const char* wrong : {"123456", "", "abcd-efgh-jkmn", "abcd-efgh-jkmn-pqrs", "x"}) {
    auto r = use_break_glass_code(config_, wrong);
    ASSERT_TRUE(is_ok(r)) << wrong;
    EXPECT_FALSE(*r) << wrong;
  }
  EXPECT_EQ(*break_glass_left(config_), 2);
}

TEST_F(BreakGlassTest, ANewSetReplacesTheOld) {
  auto first = make_break_glass_codes(config_, 2, kCheapKdf);
  ASSERT_TRUE(is_ok(first));
  auto second = make_break_glass_codes(config_, 2, kCheapKdf);
  ASSERT_TRUE(is_ok(second));
  auto r = use_break_glass_code(config_, (*first)[0].view());
  ASSERT_TRUE(is_ok(r));
  EXPECT_FALSE(*r);
  r = use_break_glass_code(config_, (*second)[0].view());
  ASSERT_TRUE(is_ok(r));
  EXPECT_TRUE(*r);
}

TEST_F(BreakGlassTest, NoFileMeansNoCodes) {
  auto left = break_glass_left(config_);
  ASSERT_TRUE(is_ok(left));
  EXPECT_EQ(*left, 0);
  ASSERT_EQ(::mkdir(config_.state_dir.c_str(), 0700), 0);
  auto r = use_break_glass_code(config_, "abcd-efgh-jkmn-pqrs");
  ASSERT_TRUE(is_ok(r));
  EXPECT_FALSE(*r);
}

TEST_F(BreakGlassTest, HostileFilesAreRefusedAndLeftAlone) {
  auto codes = make_break_glass_codes(config_, 2, kCheapKdf);
  ASSERT_TRUE(is_ok(codes));
  std::string path = break_glass_path(config_);
  std::string good = read_file(path).value();
  std::string code((*codes)[0].view());

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto before = snapshot(config_.state_dir);
  EXPECT_TRUE(has_errc(use_break_glass_code(config_, code), Errc::kUnsafe));
  EXPECT_EQ(snapshot_diff(before, snapshot(config_.state_dir)), "");

  ASSERT_TRUE(write_file(path, good.substr(0, good.size() - 4)));  // no end line
  before = snapshot(config_.state_dir);
  EXPECT_TRUE(has_errc(use_break_glass_code(config_, code), Errc::kCorrupt));
  EXPECT_EQ(snapshot_diff(before, snapshot(config_.state_dir)), "");

  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_TRUE(write_file(tmp_ / "elsewhere", good));
  ASSERT_EQ(::symlink((tmp_ / "elsewhere").c_str(), path.c_str()), 0);
  EXPECT_TRUE(has_errc(use_break_glass_code(config_, code), Errc::kUnsafe));
  EXPECT_EQ(read_file(tmp_ / "elsewhere").value(), good);
}

}  // namespace
}  // namespace pbx::totp
