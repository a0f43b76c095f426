// Shared by fuzz_pam_stack and fuzz_sshd_config: one input as several files in memory, so the
// readers follow includes. Text before the first header is the top file; a line "--- NAME"
// starts the file NAME (relative to `dir` unless it starts with '/'), "--- !NAME" names a file
// that exists but cannot be read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "doctor/file_reader.hpp"

struct VirtualFiles {
  pbx::cli::doctor::MemoryFiles files;
  std::vector<std::string> names;  // as the headers give them, the top file first
};

inline VirtualFiles split_into_files(std::string_view input, const std::string& dir,
                                     const std::string& top) {
  VirtualFiles out;
  std::string name = top;
  bool unreadable = false;
  std::string text;
  auto flush = [&]() {
    std::string path = name.empty() || name.front() != '/' ? dir + "/" + name : name;
    if (unreadable) {
      out.files.add_unreadable(path, "not a regular file");
    } else {
      out.files.add(path, text);
    }
    out.names.push_back(name);
    text.clear();
  };
  while (!input.empty()) {
    std::size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
    if (line.rfind("--- ", 0) == 0) {
      flush();
      name = std::string(line.substr(4));
      unreadable = !name.empty() && name.front() == '!';
      if (unreadable) name.erase(0, 1);
      continue;
    }
    text.append(line);
    if (nl != std::string_view::npos) text.push_back('\n');
  }
  flush();
  return out;
}
