// doctor's disk reader and the library's read_checked_text under it, on real files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "doctor/file_reader.hpp"
#include "pbx/totp/checked_file.hpp"

namespace pbx::cli::doctor {
namespace {

namespace fs = std::filesystem;

class DiskFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/pbx-doctor-files-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  // What DiskFiles says about `name`: the text, or "error: REASON".
  std::string read(const std::string& name) const {
    std::string error;
    auto text = DiskFiles().read(path(name), error);
    return text ? *text : "error: " + error;
  }

  std::string dir_;
};

TEST_F(DiskFilesTest, ReasonsAreWordedAsDoctorAlwaysSaidThem) {
  write("ok", "UsePAM yes\n");
  EXPECT_EQ(read("ok"), "UsePAM yes\n");
  EXPECT_EQ(read("missing"), "error: No such file or directory");
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  EXPECT_EQ(read("fifo"), "error: not a regular file") << "and it did not block";
  ASSERT_TRUE(fs::create_directory(path("dir")));
  EXPECT_EQ(read("dir"), "error: not a regular file");
  write("big", std::string(kMaxTextFile + 1, '#'));
  EXPECT_EQ(read("big"), "error: larger than 1 MiB");
  write("exact", std::string(kMaxTextFile, '#'));
  EXPECT_EQ(read("exact").size(), kMaxTextFile);
  write("not-a-dir", "");
  EXPECT_EQ(read("not-a-dir/x"), "error: Not a directory");
}

TEST_F(DiskFilesTest, LinksAreFollowedAsPamAndSshdFollowThem) {
  write("target", "auth required pam_unix.so\n");
  fs::create_symlink(path("target"), path("link"));
  EXPECT_EQ(read("link"), "auth required pam_unix.so\n");
  fs::create_symlink(path("nothing"), path("dangling"));
  EXPECT_EQ(read("dangling"), "error: No such file or directory");
  fs::create_symlink(path("dir-target"), path("dir-link"));
  ASSERT_TRUE(fs::create_directory(path("dir-target")));
  write("dir-target/f", "x");
  EXPECT_EQ(read("dir-link/f"), "x");
  fs::create_symlink(path("dir-target"), path("link-to-dir"));
  EXPECT_EQ(read("link-to-dir"), "error: not a regular file");
}

TEST_F(DiskFilesTest, AnyOwnerAndModeAreRead) {
  write("open", "x");
  ASSERT_EQ(::chmod(path("open").c_str(), 0666), 0);
  EXPECT_EQ(read("open"), "x");
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path("open").c_str(), 12345, 12345), 0);
    EXPECT_EQ(read("open"), "x");
  }
}

TEST_F(DiskFilesTest, GlobIsSortedAndSkipsDotFiles) {
  ASSERT_TRUE(fs::create_directory(path("d")));
  write("d/20-b.conf", "");
  write("d/10-a.conf", "");
  write("d/.hidden.conf", "");
  write("d/README", "");
  EXPECT_EQ(DiskFiles().glob(path("d/*.conf")),
            (std::vector<std::string>{path("d/10-a.conf"), path("d/20-b.conf")}));
  EXPECT_TRUE(DiskFiles().glob(path("d/none*")).empty());
  EXPECT_TRUE(DiskFiles().glob(path("d/missing.conf")).empty());
  EXPECT_EQ(DiskFiles().glob(path("d/README")), (std::vector<std::string>{path("d/README")}));
}

// The checks DiskFiles does not ask for, through the same public routine.
TEST_F(DiskFilesTest, ReadCheckedTextChecksOwnerModeAndLinksWhenAsked) {
  write("f", "text");
  ASSERT_EQ(::chmod(path("f").c_str(), 0664), 0);
  totp::FileCheck check;
  check.owner = std::nullopt;
  check.forbidden_mode = 0;
  check.max_size = 100;
  auto any = totp::read_checked_text(path("f"), check, "test file");
  ASSERT_TRUE(any) << any.error().message;
  EXPECT_EQ(**any, "text");

  check.forbidden_mode = 022;
  auto writable = totp::read_checked_text(path("f"), check, "test file");
  ASSERT_FALSE(writable);
  EXPECT_EQ(writable.error().code, totp::Errc::kUnsafe);
  EXPECT_EQ(writable.error().message.rfind("test file " + path("f") + ": mode 0664", 0), 0U)
      << writable.error().message;

  check.forbidden_mode = 0;
  check.owner = ::geteuid() + 1;
  auto owner = totp::read_checked_text(path("f"), check, "test file");
  ASSERT_FALSE(owner);
  EXPECT_NE(owner.error().message.find("owned by uid"), std::string::npos);

  check.owner = ::geteuid();
  fs::create_symlink(path("f"), path("l"));
  auto link = totp::read_checked_text(path("l"), check, "test file");
  ASSERT_FALSE(link) << "a link is refused unless follow_symlinks";
  EXPECT_EQ(link.error().message, "test file " + path("l") + ": is a symbolic link (refused)");
  check.follow_symlinks = true;
  auto owned_and_followed = totp::read_checked_text(path("l"), check, "test file");
  ASSERT_FALSE(owned_and_followed) << "a required owner is never checked on a link's target";
  EXPECT_EQ(owned_and_followed.error().code, totp::Errc::kInvalid);
  check.owner = std::nullopt;
  auto followed = totp::read_checked_text(path("l"), check, "test file");
  ASSERT_TRUE(followed) << followed.error().message;
  EXPECT_EQ(**followed, "text");

  // Errors about the link's target still name the path the caller gave.
  write("big", std::string(101, 'x'));
  fs::create_symlink(path("big"), path("big-link"));
  auto big = totp::read_checked_text(path("big-link"), check, "test file");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message, "test file " + path("big-link") + ": larger than 100 bytes");

  auto missing = totp::read_checked_text(path("missing"), check, "test file");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

}  // namespace
}  // namespace pbx::cli::doctor
