// Clock: the one source of "now", injected so tests never depend on the wall clock.
#pragma once

#include <cstdint>

namespace pbx::totp {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now() const = 0;  // Unix seconds
};

class SystemClock final : public Clock {
 public:
  std::int64_t now() const override;
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(std::int64_t t) : t_(t) {}
  std::int64_t now() const override { return t_; }
  void set(std::int64_t t) { t_ = t; }
  void advance(std::int64_t seconds) { t_ += seconds; }

 private:
  std::int64_t t_;
};

}  // namespace pbx::totp
