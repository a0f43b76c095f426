#include "pbx/totp/qr.hpp"

#include <dlfcn.h>
#include <qrencode.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>

#include "pbx/totp/secret.hpp"

namespace pbx::totp {
namespace {

constexpr int kQuietZone = 4;
// Half-block drawings taller than this no longer fit a 30-line budget (with the caller's
// surrounding text that is what a 24-to-30-line terminal shows), so level M gives way to L.
constexpr int kMaxHalfBlockLines = 30;

constexpr std::string_view kUpper = "\xE2\x96\x80";  // U+2580 UPPER HALF BLOCK
constexpr std::string_view kLower = "\xE2\x96\x84";  // U+2584 LOWER HALF BLOCK
constexpr std::string_view kFull = "\xE2\x96\x88";   // U+2588 FULL BLOCK
constexpr std::string_view kBlackOnWhite = "\x1B[30;47m";
constexpr std::string_view kReset = "\x1B[0m";

// libqrencode, loaded when the first QR code is drawn rather than with the module: nearly no
// login enrolls anyone, and a library the module does not link is one the dynamic linker does
// not load and relocate in every login (bench/login/PROFILE-issue20.md). By soname, from the
// system's library directories like a NEEDED entry; RTLD_NODELETE: never unmapped under a host.
struct Qrencode {
  decltype(&QRcode_encodeString) encode_string = nullptr;
  decltype(&QRcode_free) free_code = nullptr;
  std::string error;  // why it could not be loaded
};

const Qrencode& qrencode() {
  static const Qrencode kApi = [] {
    Qrencode api;
    void* handle = ::dlopen(PBX_QRENCODE_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      api.error = std::string("libqrencode cannot be loaded: ") +
                  (why != nullptr ? why : PBX_QRENCODE_SONAME);
      return api;
    }
    auto encode =
        reinterpret_cast<decltype(&QRcode_encodeString)>(::dlsym(handle, "QRcode_encodeString"));
    auto free_code = reinterpret_cast<decltype(&QRcode_free)>(::dlsym(handle, "QRcode_free"));
    if (encode == nullptr || free_code == nullptr) {
      api.error = "libqrencode (" PBX_QRENCODE_SONAME ") lacks QRcode_encodeString or QRcode_free";
      return api;
    }
    api.encode_string = encode;
    api.free_code = free_code;
    return api;
  }();
  return kApi;
}

// Owns a QRcode and wipes its modules (they encode the secret) before freeing it.
class Symbol {
 public:
  explicit Symbol(QRcode* code) : code_(code) {}
  ~Symbol() {
    if (code_ != nullptr) {
      wipe(code_->data, static_cast<std::size_t>(code_->width) * code_->width);
      qrencode().free_code(code_);  // only ever made by a loaded libqrencode
    }
  }
  Symbol(const Symbol&) = delete;
  Symbol& operator=(const Symbol&) = delete;

  bool ok() const { return code_ != nullptr && code_->width > 0; }
  int width() const { return code_->width; }
  // Quiet-zone-aware: coordinates outside the symbol are light.
  bool dark(int row, int col) const {
    if (row < 0 || col < 0 || row >= code_->width || col >= code_->width) return false;
    return (code_->data[row * code_->width + col] & 1) != 0;
  }

 private:
  QRcode* code_;
};

int half_block_lines(int width) { return (width + 2 * kQuietZone + 1) / 2; }

Result<std::unique_ptr<Symbol>> encode(const SecretString& text) {
  const Qrencode& lib = qrencode();
  if (lib.encode_string == nullptr) return make_error(Errc::kInternal, lib.error);
  for (QRecLevel level : {QR_ECLEVEL_M, QR_ECLEVEL_L}) {
    // Case-sensitive with automatic segmentation: the upper-case base32 secret goes into
    // alphanumeric mode, which keeps the symbol a version smaller than all-8-bit.
    errno = 0;
    auto symbol =
        std::make_unique<Symbol>(lib.encode_string(text.str().c_str(), 0, level, QR_MODE_8, 1));
    if (!symbol->ok()) {
      if (errno == ERANGE) continue;  // too long for this level; L holds more
      return make_error(Errc::kInternal, "libqrencode could not encode the text");
    }
    if (level == QR_ECLEVEL_M && half_block_lines(symbol->width()) > kMaxHalfBlockLines) {
      continue;
    }
    return symbol;
  }
  return make_error(Errc::kInvalid, "text too long for a QR code");
}

void draw_half_blocks(const Symbol& s, bool ink_is_dark, bool colours, std::string& out) {
  const int first = -kQuietZone;
  const int last = s.width() + kQuietZone;  // exclusive
  for (int row = first; row < last; row += 2) {
    if (colours) out += kBlackOnWhite;
    for (int col = first; col < last; ++col) {
      bool top = s.dark(row, col) == ink_is_dark;
      // An odd last line has no lower row: it is left without ink, which reads as light in
      // kAnsi (white background) and as terminal background under a light quiet-zone row in
      // kUtf8 (the quiet zone is complete either way).
      bool bottom = row + 1 < last && s.dark(row + 1, col) == ink_is_dark;
      if (top && bottom) {
        out += kFull;
      } else if (top) {
        out += kUpper;
      } else if (bottom) {
        out += kLower;
      } else {
        out += ' ';
      }
    }
    if (colours) out += kReset;
    out += '\n';
  }
}

void draw_ascii(const Symbol& s, std::string& out) {
  const int first = -kQuietZone;
  const int last = s.width() + kQuietZone;
  for (int row = first; row < last; ++row) {
    for (int col = first; col < last; ++col) out += s.dark(row, col) ? "##" : "  ";
    out += '\n';
  }
}

// The symbol of `text`, after the checks render_qr and qr_matrix share.
Result<std::unique_ptr<Symbol>> symbol_of(std::string_view text) {
  if (text.empty()) return make_error(Errc::kInvalid, "nothing to draw as a QR code");
  if (text.size() > kMaxQrText) return make_error(Errc::kInvalid, "text too long for a QR code");
  if (text.find('\0') != std::string_view::npos) {
    return make_error(Errc::kInvalid, "a QR code text cannot hold a NUL byte");
  }
  SecretString terminated{std::string(text)};  // the URI holds the secret
  return encode(terminated);
}

}  // namespace

Result<QrMatrix> qr_matrix(std::string_view text) {
  auto symbol = symbol_of(text);
  if (!symbol) return symbol.error();
  const Symbol& s = **symbol;
  QrMatrix m;
  m.size = s.width();
  m.rows.reserve(static_cast<std::size_t>(m.size));
  for (int row = 0; row < m.size; ++row) {
    SecretString line;
    line.reserve(static_cast<std::size_t>(m.size));  // filled in place: no copy left behind
    for (int col = 0; col < m.size; ++col) line.append(s.dark(row, col) ? '1' : '0');
    m.rows.push_back(std::move(line));
  }
  return m;
}

Result<std::string> render_qr(std::string_view text, QrStyle style) {
  auto symbol = symbol_of(text);
  if (!symbol) return symbol.error();
  const Symbol& s = **symbol;

  // Reserve the whole drawing up front so the buffer never moves and leaves a copy behind.
  const auto side = static_cast<std::size_t>(s.width()) + std::size_t{2} * kQuietZone;
  std::string out;
  out.reserve(side * (side + 1) * 3 + side * 16 + 16);
  switch (style) {
    case QrStyle::kAnsi:
      draw_half_blocks(s, true, true, out);
      break;
    case QrStyle::kUtf8:
      draw_half_blocks(s, false, false, out);
      break;
    case QrStyle::kAscii:
      draw_ascii(s, out);
      break;
  }
  return out;
}

}  // namespace pbx::totp
