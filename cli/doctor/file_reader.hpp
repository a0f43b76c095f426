// Where doctor's readers get file text: the disk through the library's checked read, or memory.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pbx::cli::doctor {

// The PAM-stack and sshd_config readers see files only through this, so tests and fuzzers
// hand them files in memory.
class FileReader {
 public:
  virtual ~FileReader() = default;
  // The text of `path`, or nullopt with the reason in `error` (a missing file: the text of
  // strerror(ENOENT), "No such file or directory").
  virtual std::optional<std::string> read(const std::string& path, std::string& error) const = 0;
  // The paths matching a glob(3) pattern (no brace or tilde expansion, a leading '.' only
  // matched explicitly), sorted; none when nothing matches.
  virtual std::vector<std::string> glob(const std::string& pattern) const = 0;
};

// The largest configuration file doctor reads.
inline constexpr std::size_t kMaxTextFile = std::size_t{1024} * 1024;
// The readers follow includes no deeper than this (a loop ends there, with a problem noted)...
inline constexpr int kMaxIncludeDepth = 16;
// ...and read at most this many files for one PAM service or one sshd_config, so includes
// that fan out cannot take exponential time.
inline constexpr std::size_t kMaxIncludedFiles = 256;

// Files on disk: any owner and mode, links followed (as PAM and sshd do), regular files of at
// most kMaxTextFile bytes, never blocking on a FIFO.
class DiskFiles final : public FileReader {
 public:
  std::optional<std::string> read(const std::string& path, std::string& error) const override;
  std::vector<std::string> glob(const std::string& pattern) const override;
};

// Files in memory, named exactly as they are looked up (no path normalisation).
class MemoryFiles final : public FileReader {
 public:
  MemoryFiles() = default;
  explicit MemoryFiles(std::map<std::string, std::string> files) : files_(std::move(files)) {}

  void add(const std::string& path, std::string text) { files_[path] = std::move(text); }
  // `path` exists but cannot be read: read() answers `reason` ("not a regular file").
  void add_unreadable(const std::string& path, std::string reason) {
    errors_[path] = std::move(reason);
  }

  std::optional<std::string> read(const std::string& path, std::string& error) const override;
  std::vector<std::string> glob(const std::string& pattern) const override;

 private:
  std::map<std::string, std::string> files_;
  std::map<std::string, std::string> errors_;
};

}  // namespace pbx::cli::doctor
