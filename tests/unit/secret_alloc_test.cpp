// SecretString and SecretBytes wipe every block they free: growth, shrinking, copies, moves and
// destruction, checked by an allocator under CleansingAllocator that inspects each freed block.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/secret.hpp"

namespace pbx::totp {
namespace {

// What the recording allocator saw. A test-only static: the allocator must be stateless so the
// containers can default-construct it.
struct FreeLog {
  std::size_t allocated = 0;
  std::size_t freed = 0;
  std::size_t unwiped = 0;  // freed blocks that still held a non-zero byte
};

FreeLog& free_log() {
  static FreeLog log;
  return log;
}

// std::allocator that checks, as each block is handed back, that every byte of it is zero.
template <class T>
struct RecordingAllocator {
  using value_type = T;
  RecordingAllocator() = default;
  template <class U>
  RecordingAllocator(const RecordingAllocator<U>& /*other*/) noexcept {}  // for rebinding

  T* allocate(std::size_t n) {
    ++free_log().allocated;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const auto* bytes = reinterpret_cast<const unsigned char*>(p);
    bool zero = std::all_of(bytes, bytes + n * sizeof(T), [](unsigned char c) { return c == 0; });
    ++free_log().freed;
    if (!zero) ++free_log().unwiped;
    std::allocator<T>().deallocate(p, n);
  }
  friend bool operator==(const RecordingAllocator&, const RecordingAllocator&) { return true; }
};

using TestString = BasicSecretString<RecordingAllocator<char>>;
using TestBytes = BasicSecretBytes<RecordingAllocator<std::uint8_t>>;

static_assert(std::is_same_v<SecretString::String::allocator_type, CleansingAllocator<char>>);
static_assert(
    std::is_same_v<SecretBytes::Buffer::allocator_type, CleansingAllocator<std::uint8_t>>);
static_assert(sizeof(CleansingAllocator<char>) == 1, "stateless: no cost per string");

class SecretAllocTest : public ::testing::Test {
 protected:
  void SetUp() override { free_log() = FreeLog{}; }

  // Everything allocated was freed, through the recorder, and wiped.
  static void expect_all_freed_wiped() {
    EXPECT_EQ(free_log().freed, free_log().allocated) << "a block was not freed";
    EXPECT_EQ(free_log().unwiped, 0U) << "a block was freed with secret bytes in it";
  }
};

// The recorder is able to see an unwiped block: the same growth without CleansingAllocator.
TEST_F(SecretAllocTest, RecorderCatchesAnUnwipedBlock) {
  {
    std::vector<std::uint8_t, RecordingAllocator<std::uint8_t>> plain;
    for (int i = 0; i < 1000; ++i) plain.push_back(0xA5);
  }
  EXPECT_GT(free_log().freed, 5U);
  EXPECT_EQ(free_log().unwiped, free_log().freed);
}

TEST_F(SecretAllocTest, StringGrowthOneCharAtATime) {
  {
    TestString s;
    for (int i = 0; i < 5000; ++i) s.append(static_cast<char>('a' + i % 26));
    EXPECT_GE(free_log().freed, 5U) << "the test must force reallocations";
    EXPECT_EQ(free_log().unwiped, 0U);
    ASSERT_EQ(s.size(), 5000U);
    EXPECT_EQ(s.view().substr(0, 4), "abcd");
    EXPECT_EQ(s.view().back(), static_cast<char>('a' + 4999 % 26));
  }
  expect_all_freed_wiped();
}

TEST_F(SecretAllocTest, StringGrowthByPiecesReserveAndResize) {
  {
    TestString s;
    const std::string piece(777, 'k');
    for (int i = 0; i < 40; ++i) s.append(piece);
    s.reserve(s.size() * 3);  // moves to a bigger block
    s.resize(10);             // shrinks in place; the tail stays in the block until it is freed
    s.resize(100000);         // and grows again
    s.pop_back();
    EXPECT_EQ(s.view().substr(0, 10), "kkkkkkkkkk");
    EXPECT_EQ(s.size(), 99999U);
    EXPECT_GE(free_log().freed, 5U);
    EXPECT_EQ(free_log().unwiped, 0U);
  }
  expect_all_freed_wiped();
}

TEST_F(SecretAllocTest, StringMovesAndConstructionFromStdString) {
  {
    TestString a(std::string(300, 's'));
    TestString b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped and empty
    EXPECT_EQ(b.size(), 300U);
    TestString c(std::string(5000, 't'));
    c = std::move(b);  // c's own block is freed here
    EXPECT_EQ(c.view(), std::string(300, 's'));
    TestString d;
    d.append("short");
    d = std::move(c);
    EXPECT_EQ(d.size(), 300U);
  }
  expect_all_freed_wiped();
}

TEST_F(SecretAllocTest, StringReadLineGrowsThroughTheAllocator) {
  {
    std::istringstream in(std::string(20000, 'p') + "\nsecond\n");
    TestString line;
    line.append(std::string(3000, 'o'));  // replaced by the line read
    ASSERT_TRUE(read_line(in, line));
    EXPECT_EQ(line.view(), std::string(20000, 'p'));
    ASSERT_TRUE(read_line(in, line));
    EXPECT_EQ(line.view(), "second");
  }
  expect_all_freed_wiped();
}

// The string type itself, for what SecretString does not offer (shrinking, copies, swap).
TEST_F(SecretAllocTest, InnerStringShrinkCopySwap) {
  using String = TestString::String;
  {
    String s(4000, 'x');
    s.resize(3);
    s.shrink_to_fit();  // back into the small buffer: the big block is freed
    String t(s);
    String big(9000, 'y');
    t = big;  // t grows
    String u(100, 'z');
    u.swap(big);
    s = std::move(u);
  }
  expect_all_freed_wiped();
}

TEST_F(SecretAllocTest, BytesGrowthCopyMoveClear) {
  {
    TestBytes b;
    for (int i = 0; i < 5000; ++i) b.push_back(static_cast<std::uint8_t>(1 + i % 250));
    const std::uint8_t more[64] = {9, 9, 9, 9};
    for (int i = 0; i < 100; ++i) b.append(more, sizeof more);
    EXPECT_GE(free_log().freed, 5U);
    EXPECT_EQ(free_log().unwiped, 0U);
    ASSERT_EQ(b.size(), 5000U + 6400U);
    EXPECT_EQ(b.data()[0], 1);

    TestBytes copy(b);
    EXPECT_TRUE(copy == b);
    TestBytes small(reinterpret_cast<const std::uint8_t*>("0123456789"), 10);
    small = b;  // grows: small's block is freed
    TestBytes big(b);
    big.push_back(7);
    big = TestBytes(reinterpret_cast<const std::uint8_t*>("ab"), 2);  // move-assign
    EXPECT_EQ(big.size(), 2U);
    TestBytes moved(std::move(copy));
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    moved.clear();
    EXPECT_TRUE(moved.empty());
  }
  expect_all_freed_wiped();
}

TEST_F(SecretAllocTest, InnerBufferShrink) {
  {
    TestBytes::Buffer v(3000, 0x5A);
    v.resize(10);
    v.shrink_to_fit();
    v.insert(v.end(), 5000, 0x3C);
  }
  expect_all_freed_wiped();
}

// A short string lives inside the object, where no allocator sees it: the destructor wipes it.
TEST(SecretStringInline, DestructorWipesTheSmallBuffer) {
  alignas(SecretString) unsigned char storage[sizeof(SecretString)];
  auto* s = new (storage) SecretString(std::string("864209"));
  ASSERT_EQ(s->view(), "864209");
  s->~SecretString();
  std::string_view raw(reinterpret_cast<const char*>(storage), sizeof storage);
  EXPECT_EQ(raw.find("864209"), std::string_view::npos);
  EXPECT_EQ(raw.find("4209"), std::string_view::npos);
}

TEST(SecretStringInline, MovedFromIsWiped) {
  SecretString a(std::string("135791"));
  alignas(SecretString) unsigned char storage[sizeof(SecretString)];
  auto* b = new (storage) SecretString(std::move(a));
  SecretString c(std::move(*b));
  // Moving a short string copies it and cuts the source to length 0, which overwrites only its
  // first character: look for the rest.
  std::string_view raw(reinterpret_cast<const char*>(storage), sizeof storage);
  EXPECT_EQ(raw.find("5791"), std::string_view::npos);
  EXPECT_EQ(c.view(), "135791");
  b->~SecretString();
}

}  // namespace
}  // namespace pbx::totp
