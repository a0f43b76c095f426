// Shared by fuzz_pam_stack and fuzz_sshd_config: one input as several files in memory, so the
// readers follow includes. Text before the first header is the top file; a line "--- NAME"
// starts the file NAME (relative to `dir` unless it starts with '/'), "--- !NAME" names a file
// that exists but cannot be read.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "doctor/file_reader.hpp"

struct VirtualFiles {
  pbx::cli::doctor::MemoryFiles files;
  std::vector<std::string> names;            // as the headers give them, the top file first
  std::map<std::string, std::size_t> lines;  // path of each readable file -> its line count
};

// "PATH:LINE" names a readable file and one of its lines.
inline bool names_a_line(const VirtualFiles& vf, const std::string& where) {
  std::size_t colon = where.rfind(':');
  if (colon == std::string::npos || colon + 1 == where.size()) return false;
  std::string digits = where.substr(colon + 1);
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  auto it = vf.lines.find(where.substr(0, colon));
  std::size_t line = std::stoul(digits);
  return it != vf.lines.end() && line >= 1 && line <= it->second;
}

inline VirtualFiles split_into_files(std::string_view input, const std::string& dir,
                                     const std::string& top) {
  VirtualFiles out;
  std::string name = top;
  bool unreadable = false;
  std::set<std::string> refused;
  std::string text;
  auto flush = [&]() {
    std::string path = name.empty() || name.front() != '/' ? dir + "/" + name : name;
    if (unreadable) {
      out.files.add_unreadable(path, "not a regular file");
      refused.insert(path);
      out.lines.erase(path);
    } else {
      out.files.add(path, text);
      std::size_t n = 0;
      for (char c : text) n += c == '\n';
      // MemoryFiles answers the error of a file once named unreadable, whatever comes later.
      if (refused.count(path) == 0) out.lines[path] = n + (!text.empty() && text.back() != '\n');
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
