// QR code rendering for terminals: what `pbx-mfa enroll` and in-login enrollment draw.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

// How a QR code is drawn. Every style has a 4-module quiet zone and ends each line with '\n'.
enum class QrStyle {
  // UTF-8 half blocks (U+2580 ▀, U+2584 ▄, U+2588 █ and space), two module rows per line, one
  // column per module, each line wrapped in explicit black-on-white colours (ESC[30;47m …
  // ESC[0m): a glyph's ink is a dark module. Scans the same on dark and light themes.
  kAnsi,
  // The same half blocks without escape codes, for places that strip them. Without colours the
  // ink is the terminal's text colour, which is light on the usual dark theme, so here the ink
  // is the LIGHT modules and the terminal background shows through as the dark ones (like
  // `qrencode -t UTF8`). On a light theme this draws a negative that most scanners reject:
  // use kAnsi or kAscii there.
  kUtf8,
  // "##" for a dark module and two spaces for a light one, one line per module row: for
  // consoles without Unicode, and for printing on paper (ink is dark).
  kAscii,
};

// Largest input render_qr accepts (an otpauth URI is a few hundred bytes).
inline constexpr std::size_t kMaxQrText = 1024;

// Encodes `text` (error correction level M when the drawing then stays within 30 lines in the
// half-block styles, otherwise L) and draws it. Errors: text empty, too long or holding a NUL
// (kInvalid); libqrencode failure (kInternal).
Result<std::string> render_qr(std::string_view text, QrStyle style);

// The modules of a QR code, for a page that draws it itself: `size` rows of `size` characters,
// '1' a dark module and '0' a light one, WITHOUT the quiet zone (a drawing adds 4 light modules
// on each side). Wiped buffers: the symbol of an otpauth URI encodes the secret.
struct QrMatrix {
  int size = 0;
  std::vector<SecretString> rows;
};

// The symbol render_qr draws for `text` (the same error correction level), as modules. Errors
// as render_qr's.
Result<QrMatrix> qr_matrix(std::string_view text);

}  // namespace pbx::totp
