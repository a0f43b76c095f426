// A terminal drawing (QR half blocks, ANSI colours) turned into an image and decoded with
// zbarimg: how the tests prove that what a screen shows really scans.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "oathtool.hpp"

namespace pbx::test {

// A terminal theme: the colours of text and background when no escape code sets them.
struct Theme {
  std::uint8_t fg;
  std::uint8_t bg;
};
inline constexpr Theme kDarkTheme{230, 20};
inline constexpr Theme kLightTheme{20, 240};

// Draws text the way a terminal does: each character cell 4 pixels wide and 8 tall (a common
// aspect), ▀ ▄ █ inked in their half or whole cell, '#' inked whole, a space not at all; the
// ANSI codes 0, 30-37, 40-47, 90-97 and 100-107 (grey levels) set the colours. A margin of
// background surrounds it. Returns a binary PGM (P5).
inline std::string terminal_to_pgm(std::string_view drawing, Theme theme) {
  constexpr int kCellW = 4;
  constexpr int kCellH = 8;
  constexpr int kMargin = 24;
  auto grey = [](int code) -> std::uint8_t {
    int c = code % 10;
    bool bright = code >= 90;
    if (c == 0) return bright ? 85 : 0;     // black
    if (c == 7) return bright ? 255 : 229;  // white
    return bright ? 200 : 128;              // colours: mid grey
  };
  struct Cell {
    std::uint8_t fg, bg;
    int ink;  // 0 none, 1 top, 2 bottom, 3 whole
  };
  std::vector<std::vector<Cell>> rows(1);
  std::uint8_t fg = theme.fg, bg = theme.bg;
  std::size_t i = 0;
  while (i < drawing.size()) {
    unsigned char c = static_cast<unsigned char>(drawing[i]);
    if (c == '\n') {
      rows.emplace_back();
      ++i;
    } else if (c == 0x1b && i + 1 < drawing.size() && drawing[i + 1] == '[') {
      std::size_t end = drawing.find('m', i);
      if (end == std::string_view::npos) throw std::runtime_error("unterminated escape");
      std::string params(drawing.substr(i + 2, end - i - 2));
      if (params.empty()) params = "0";
      std::stringstream ss(params);
      std::string item;
      while (std::getline(ss, item, ';')) {
        int code = item.empty() ? 0 : std::stoi(item);
        if (code == 0) {
          fg = theme.fg;
          bg = theme.bg;
        } else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) {
          fg = grey(code);
        } else if ((code >= 40 && code <= 47) || (code >= 100 && code <= 107)) {
          bg = grey(code - 10);
        } else {
          throw std::runtime_error("unexpected escape code " + item);
        }
      }
      i = end + 1;
    } else if (drawing.compare(i, 3, "\xE2\x96\x80") == 0) {
      rows.back().push_back({fg, bg, 1});
      i += 3;
    } else if (drawing.compare(i, 3, "\xE2\x96\x84") == 0) {
      rows.back().push_back({fg, bg, 2});
      i += 3;
    } else if (drawing.compare(i, 3, "\xE2\x96\x88") == 0) {
      rows.back().push_back({fg, bg, 3});
      i += 3;
    } else if (c == ' ') {
      rows.back().push_back({fg, bg, 0});
      ++i;
    } else if (c == '#') {
      rows.back().push_back({fg, bg, 3});
      ++i;
    } else {
      throw std::runtime_error("unexpected character in a drawing: " + std::to_string(c));
    }
  }
  if (rows.back().empty()) rows.pop_back();
  std::size_t cols = 0;
  for (const auto& r : rows) cols = std::max(cols, r.size());
  const int w = static_cast<int>(cols) * kCellW + 2 * kMargin;
  const int h = static_cast<int>(rows.size()) * kCellH + 2 * kMargin;
  std::string pixels(static_cast<std::size_t>(w) * h, static_cast<char>(theme.bg));
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t col = 0; col < rows[r].size(); ++col) {
      const Cell& cell = rows[r][col];
      for (int y = 0; y < kCellH; ++y) {
        bool inked = cell.ink == 3 || (cell.ink == 1 && y < kCellH / 2) ||
                     (cell.ink == 2 && y >= kCellH / 2);
        for (int x = 0; x < kCellW; ++x) {
          int px = kMargin + static_cast<int>(col) * kCellW + x;
          int py = kMargin + static_cast<int>(r) * kCellH + y;
          pixels[static_cast<std::size_t>(py) * w + px] =
              static_cast<char>(inked ? cell.fg : cell.bg);
        }
      }
    }
  }
  return "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n" + pixels;
}

// Decodes the drawing with zbarimg; nullopt when nothing was found. Throws when zbarimg is
// missing (the test then fails loudly: install zbar-tools).
inline std::optional<std::string> zbar_decode(std::string_view drawing, Theme theme,
                                              const std::string& dir) {
  static int counter = 0;
  std::string path = dir + "/qr-" + std::to_string(++counter) + ".pgm";
  {
    std::ofstream f(path, std::ios::binary);
    f << terminal_to_pgm(drawing, theme);
  }
  auto r = pbx::test::run_program({"/usr/bin/zbarimg", "--raw", "-q", path});
  if (!r) throw std::runtime_error("zbarimg not found: apt-get install zbar-tools");
  if (r->exit_code != 0) return std::nullopt;
  std::string text = r->out;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace pbx::test
