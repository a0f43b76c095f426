// pbx-test-qr-decode FILE: finds the QR drawing in a captured screen (the longest run of lines
// made only of half blocks and spaces, as the module's enroll_at_login and `enroll --qr utf8`
// draw it: light ink on a dark terminal), renders it to an image, decodes it with zbarimg and
// prints the text. Exit 1 when there is no drawing or it does not scan. For the shell e2e tests.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "qr_image.hpp"

namespace {

bool drawing_line(const std::string& line) {
  if (line.empty()) return false;
  for (std::size_t i = 0; i < line.size();) {
    if (line[i] == ' ') {
      ++i;
    } else if (line.compare(i, 3, "\xE2\x96\x80") == 0 || line.compare(i, 3, "\xE2\x96\x84") == 0 ||
               line.compare(i, 3, "\xE2\x96\x88") == 0) {
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: pbx-test-qr-decode FILE\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::cerr << "pbx-test-qr-decode: cannot read " << argv[1] << "\n";
    return 2;
  }
  std::vector<std::string> best, run;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && line.back() == '\r') line.pop_back();  // a terminal's CR LF
    if (drawing_line(line)) {
      run.push_back(line);
      if (run.size() > best.size()) best = run;
    } else {
      run.clear();
    }
  }
  if (best.size() < 10) {
    std::cerr << "pbx-test-qr-decode: no QR drawing in " << argv[1] << "\n";
    return 1;
  }
  std::string drawing;
  for (const auto& l : best) drawing += l + "\n";
  char templ[] = "/tmp/pbx-qr-decode-XXXXXX";
  if (::mkdtemp(templ) == nullptr) {
    std::cerr << "pbx-test-qr-decode: mkdtemp failed\n";
    return 2;
  }
  std::string dir = templ;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { std::filesystem::remove_all(path); }
  } remove_dir{dir};
  try {
    auto text = pbx::test::zbar_decode(drawing, pbx::test::kDarkTheme, dir);
    if (!text) {
      std::cerr << "pbx-test-qr-decode: the drawing (" << best.size() << " lines) does not scan\n";
      return 1;
    }
    std::cout << *text << "\n";
  } catch (const std::exception& e) {
    std::cerr << "pbx-test-qr-decode: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
