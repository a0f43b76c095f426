// qr_matrix: the modules a web page draws itself (enroll --begin --json). Drawn here as an image
// with a 4-module quiet zone, as the page does, and read back with zbarimg.
#include <gtest/gtest.h>

#include <string>

#include "pbx/totp/qr.hpp"
#include "qr_image.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;

// "##" per dark module, two spaces per light one, 4 light modules around: what terminal_to_pgm
// turns into square modules (a cell is 4 × 8 pixels).
std::string ascii_drawing(const QrMatrix& m) {
  constexpr int kQuiet = 4;
  const std::string blank_row(static_cast<std::size_t>(m.size + 2 * kQuiet) * 2, ' ');
  std::string out;
  for (int i = 0; i < kQuiet; ++i) out += blank_row + "\n";
  for (const auto& row : m.rows) {
    out += std::string(kQuiet * 2, ' ');
    for (char c : row.view()) out += c == '1' ? "##" : "  ";
    out += std::string(kQuiet * 2, ' ') + "\n";
  }
  for (int i = 0; i < kQuiet; ++i) out += blank_row + "\n";
  return out;
}

TEST(QrMatrixTest, RowsAreSquareOfOnesAndZerosAndScanBackToTheText) {
  testing::TempDir dir;
  const std::string uris[] = {
      "otpauth://totp/PBX:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=PBX&algorithm="
      "SHA1&digits=6&period=30",
      "otpauth://totp/pbx-test-host:bob%20%28phone2%29?secret=" + std::string(103, 'A') +
          "&issuer=pbx-test-host&algorithm=SHA512&digits=8&period=60",
  };
  for (const auto& uri : uris) {
    auto m = qr_matrix(uri);
    ASSERT_TRUE(is_ok(m)) << uri;
    ASSERT_GE(m->size, 21);
    EXPECT_EQ((m->size - 17) % 4, 0) << "a QR version is 17 + 4·v modules wide";
    ASSERT_EQ(m->rows.size(), static_cast<std::size_t>(m->size));
    for (const auto& row : m->rows) {
      ASSERT_EQ(row.size(), static_cast<std::size_t>(m->size));
      EXPECT_EQ(row.view().find_first_not_of("01"), std::string_view::npos);
    }
    // No quiet zone: the finder pattern's dark corner is the first module.
    EXPECT_EQ(m->rows.front().view().substr(0, 7), "1111111");
    EXPECT_EQ(m->rows.back().view().substr(0, 7), "1111111");
    auto decoded = pbx::test::zbar_decode(ascii_drawing(*m), pbx::test::kLightTheme, dir.path());
    ASSERT_TRUE(decoded.has_value()) << "zbarimg found no QR code";
    EXPECT_EQ(*decoded, uri);
  }
}

TEST(QrMatrixTest, IsTheSymbolTheTerminalDrawingShows) {
  const std::string uri = "otpauth://totp/PBX:alice?secret=JBSWY3DPEHPK3PXP&issuer=PBX";
  auto m = qr_matrix(uri);
  auto ascii = render_qr(uri, QrStyle::kAscii);
  ASSERT_TRUE(is_ok(m));
  ASSERT_TRUE(is_ok(ascii));
  // render_qr's ascii style: the same modules with a 4-module quiet zone.
  EXPECT_EQ(*ascii, ascii_drawing(*m));
}

TEST(QrMatrixTest, RefusesWhatRenderQrRefuses) {
  EXPECT_TRUE(has_errc(qr_matrix(""), Errc::kInvalid));
  EXPECT_TRUE(has_errc(qr_matrix(std::string(kMaxQrText + 1, 'A')), Errc::kInvalid));
  EXPECT_TRUE(has_errc(qr_matrix(std::string("a\0b", 3)), Errc::kInvalid));
}

}  // namespace
}  // namespace pbx::totp
