// The two-slot state file of the file store: written in place, the newest valid slot wins, a
// torn slot falls back to the other, both bad is refused; text-format files read and converted;
// hostile files refused untouched; a kill or a power cut between the write and its sync.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/state_file.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace {
// What the seam below does after a slot's bytes are written, before their fdatasync.
enum SlotFault : int { kNoFault = 0, kKill, kTearTail, kTearHeader, kWriteNothing };
std::atomic<int> g_slot_fault{kNoFault};
}  // namespace

// The file store's test seam (lib/src/file_store.cpp): defined here, so only this binary has it.
extern "C" void pbx_totp_test_slot_written(int fd, unsigned long long offset,
                                           unsigned long long size) {
  const int fault = g_slot_fault.load();
  if (fault == kNoFault) return;
  // A power cut before the sync: only a part of the new slot reached the disk.
  auto zero = [&](unsigned long long from, unsigned long long count) {
    std::string zeros(count, '\0');
    ssize_t n = ::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(offset + from));
    (void)n;
  };
  if (fault == kTearTail) zero(size / 2, size - size / 2);
  if (fault == kTearHeader) zero(0, 56);
  if (fault == kWriteNothing) zero(0, size);
  ::kill(::getpid(), SIGKILL);
}

// The unlocked read's seam: what a test does after each read (another login's change).
namespace {
std::function<void(int)> g_after_state_read;
}  // namespace
extern "C" void pbx_totp_test_state_read(int attempt) {
  if (g_after_state_read) g_after_state_read(attempt);
}

namespace pbx::totp {
namespace {

using namespace std::chrono_literals;
using testing::code_for_step;
using testing::errc_or_ok;
using testing::is_ok;
using testing::kIdA;
using testing::kOtherUid;
using testing::kStep;
using testing::kT0;
using testing::lstat_of;
using testing::read_file;
using testing::run_in_child;
using testing::snapshot;
using testing::snapshot_diff;
using testing::step_of;
using testing::write_file;

constexpr int kOk = -1;  // what errc_or_ok returns for success

UserState state_with(int failures) {
  UserState s;
  s.enrollment_id = std::string(kIdA);
  s.failures = failures;
  s.last_success = kT0;
  return s;
}

// Overwrites bytes of a file in place (same inode, no truncation).
void poke(const std::string& path, std::size_t at, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

class StateSlotsTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned state files");
    StoreFixture::SetUp();
  }
  void TearDown() override { g_slot_fault = kNoFault; }

  std::string path() const { return state_file(alice_); }
  std::string bytes() const { return read_file(path()).value_or(""); }

  void commit(const UserState& s) {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    ASSERT_TRUE(is_ok(txn.value()->commit(s)));
  }
  int locked_failures() {
    auto txn = store().lock_state(alice_);
    if (!txn.ok()) {
      ADD_FAILURE() << txn.error().message;
      return -100;
    }
    return txn.value()->state().failures;
  }
  int peeked_failures() {
    auto s = store().peek_state(alice_);
    if (!s.ok()) {
      ADD_FAILURE() << s.error().message;
      return -100;
    }
    return s->failures;
  }
  void plant(const std::string& content, mode_t mode = 0600, uid_t uid = 0) {
    ::unlink(path().c_str());
    ASSERT_TRUE(write_file(path(), content, mode, uid, uid));
  }
  ino_t inode() const { return lstat_of(path()).value().st_ino; }

  // Both reads refuse with `expected`, and nothing under the temp dir changes; neither does a
  // commit attempt (it cannot start: lock_state refused).
  void expect_refused(Errc expected, const std::string& what) {
    SCOPED_TRACE(what);
    testing::Snapshot before = snapshot(tmp_.path());
    for (auto probe : {&StateSlotsTest::lock_in_child, &StateSlotsTest::peek_in_child}) {
      std::optional<int> got = (this->*probe)();
      ASSERT_TRUE(got.has_value()) << "did not return within 1 s";
      EXPECT_EQ(*got, static_cast<int>(expected))
          << "got " << (*got == kOk ? "success" : errc_name(static_cast<Errc>(*got)));
    }
    EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  }

  // Two commits: slot 0 holds failures 1 (sequence 1), slot 1 failures 2 (sequence 2).
  void two_commits() {
    commit(state_with(1));
    commit(state_with(2));
    StateSlots s = decode_state_slots(bytes());
    ASSERT_EQ(s.newest, 1);
    ASSERT_EQ(s.sequence, 2u);
  }
};

// ---------------------------------------------------------------------------------------------
// The format

TEST(StateFileFormat, SlotSizes) {
  EXPECT_EQ(state_slot_size_for(0), 4096u);
  EXPECT_EQ(state_slot_size_for(4096 - kStateSlotHeaderSize), 4096u);
  EXPECT_EQ(state_slot_size_for(4096 - kStateSlotHeaderSize + 1), 8192u);
  EXPECT_EQ(state_slot_size_for(kMaxStateFileSize), kMaxStateSlotSize);
  EXPECT_EQ(state_slot_size_for(kMaxStateFileSize + 1), 0u);
  EXPECT_EQ(kMaxStateSlotSize, 20480u);
  EXPECT_TRUE(state_slot_file_size(8192));
  EXPECT_TRUE(state_slot_file_size(2 * kMaxStateSlotSize));
  for (std::size_t bad : {std::size_t{0}, std::size_t{4096}, std::size_t{8191}, std::size_t{8193},
                          std::size_t{12288}, 2 * kMaxStateSlotSize + 8192}) {
    EXPECT_FALSE(state_slot_file_size(bad)) << bad;
  }
}

TEST(StateFileFormat, RoundTripAndNewestWins) {
  const std::string a = serialize_state(state_with(5));
  const std::string b = serialize_state(state_with(3));
  std::string file = encode_state_file(a, 7, 4096);
  ASSERT_EQ(file.size(), 8192u);
  EXPECT_EQ(file.substr(4096), std::string(4096, '\0')) << "the second slot is written, as zeros";
  StateSlots s = decode_state_slots(file);
  EXPECT_EQ(s.newest, 0);
  EXPECT_EQ(s.sequence, 7u);
  EXPECT_EQ(s.payload, a);
  EXPECT_EQ(state_file_text(file, "f").value(), a);

  std::string slot = encode_state_slot(b, 8, 4096);
  file.replace(4096, slot.size(), slot);
  s = decode_state_slots(file);
  EXPECT_EQ(s.newest, 1);
  EXPECT_EQ(s.payload, b);
  slot = encode_state_slot(b, 6, 4096);  // the same slot, now older than the first
  file.replace(4096, slot.size(), slot);
  s = decode_state_slots(file);
  EXPECT_EQ(s.newest, 0);
  EXPECT_EQ(s.payload, a);
}

TEST(StateFileFormat, ASlotCopiedFromAFileWithOtherSlotsIsInvalid) {
  const std::string a = serialize_state(state_with(5));
  std::string big = encode_state_file(a, 1, 8192);
  ASSERT_EQ(big.size(), 16384u);
  EXPECT_EQ(decode_state_slots(big).newest, 0);
  // Its first slot as the first slot of a 4096-slot file: the header says 8192.
  std::string small = big.substr(0, 4096) + std::string(4096, '\0');
  EXPECT_EQ(decode_state_slots(small).newest, -1);
}

// Everything a state can hold at its caps fits one 4096-byte slot: the growth to bigger slots is
// there for a future format, not for today's states.
TEST(StateFileFormat, AFullStateFitsOneSlot) {
  UserState s = state_with(9);
  for (int i = 0; i < kMaxDevices; ++i) {
    DeviceMark m;
    m.device = std::string(32, static_cast<char>('a' + i));
    m.created = kT0;
    m.last_step = kT0 / 30;
    m.skew = -kMaxSkewSteps;
    m.last_used = kT0;
    s.marks.push_back(m);
  }
  for (int i = 0; i < kMaxGraceEntries; ++i) {
    s.grace.push_back(GraceEntry{std::string(32, static_cast<char>('0' + i % 10)), kT0});
  }
  for (int i = 0; i < kMaxRecoveryCodes; ++i) s.used_recovery.push_back(i);
  s.last_failure = kT0;
  s.last_failure_rhost = std::string(kMaxRhostText, 'h');
  s.locked_until = kT0 + 3600;
  s.required = RequiredMark{true, std::string(64, 'r'), kT0};
  const std::string text = serialize_state(s);
  ASSERT_TRUE(is_ok(parse_state(text)));
  // Room left for a temp code: salt and hash in hex, issuer, a 200-byte reason, numbers.
  EXPECT_LE(text.size() + 1024, 4096 - kStateSlotHeaderSize) << text.size();
}

// ---------------------------------------------------------------------------------------------
// Through the store

TEST_F(StateSlotsTest, ChangesAlternateSlotsInPlace) {
  commit(state_with(1));  // no file yet: a new one, by rename
  std::string b = bytes();
  ASSERT_EQ(b.size(), 8192u);
  // Its second slot is zeros: not a damaged copy.
  EXPECT_FALSE(decode_state_slots(b).other_damaged);
  EXPECT_EQ(locked_failures(), 1);
  EXPECT_EQ(store().take_notice(), "");
  EXPECT_EQ(decode_state_slots(b).newest, 0);
  EXPECT_EQ(decode_state_slots(b).sequence, 1u);
  const ino_t ino = inode();
  for (int i = 2; i <= 6; ++i) {
    commit(state_with(i));
    b = bytes();
    StateSlots s = decode_state_slots(b);
    EXPECT_EQ(s.newest, (i - 1) % 2) << i;
    EXPECT_EQ(s.sequence, static_cast<std::uint64_t>(i));
    EXPECT_EQ(locked_failures(), i);
    EXPECT_EQ(peeked_failures(), i);
    auto st = lstat_of(path()).value();
    EXPECT_EQ(st.st_ino, ino) << "replaced instead of written in place";
    EXPECT_EQ(st.st_size, 8192);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 0u);
    // Written once at creation, never sparse: fdatasync has no block to allocate.
    EXPECT_GE(st.st_blocks * 512, 8192);
  }
  // Nothing else in state_dir but the lock file.
  testing::Snapshot dir = snapshot(state_dir_);
  EXPECT_EQ(dir.size(), 3u) << snapshot_diff({}, dir);
}

// A sequence at its end (a planted or restored file) would wrap to 0 and lose to the other slot
// for ever, every later change silently lost: the change writes a new file starting at 1.
TEST_F(StateSlotsTest, ASequenceAtItsEndStartsANewFile) {
  plant(encode_state_file(serialize_state(state_with(4)), UINT64_MAX, 4096));
  EXPECT_EQ(locked_failures(), 4);
  commit(state_with(5));
  EXPECT_EQ(locked_failures(), 5);
  commit(state_with(6));
  EXPECT_EQ(locked_failures(), 6);
  EXPECT_EQ(peeked_failures(), 6);
}

TEST_F(StateSlotsTest, ATornNewestSlotFallsBackToTheOther) {
  struct Tear {
    const char* name;
    std::function<void(const std::string&, std::size_t slot_at, std::size_t length)> apply;
  };
  const std::vector<Tear> tears = {
      {"payload cut short (its end still the older bytes)",
       [](const std::string& p, std::size_t at, std::size_t len) {
         poke(p, at + len - 8, std::string(8, '\0'));
       }},
      {"one payload byte flipped",
       [](const std::string& p, std::size_t at, std::size_t len) {
         std::string b = read_file(p).value();
         poke(p, at + len / 2, std::string(1, static_cast<char>(b[at + len / 2] ^ 0x20)));
       }},
      {"sequence number flipped",
       [](const std::string& p, std::size_t at, std::size_t) {
         std::string b = read_file(p).value();
         poke(p, at + 40, std::string(1, static_cast<char>(b[at + 40] ^ 1)));
       }},
      {"header zeroed", [](const std::string& p, std::size_t at,
                           std::size_t) { poke(p, at, std::string(kStateSlotHeaderSize, '\0')); }},
      {"slot zeroed", [](const std::string& p, std::size_t at,
                         std::size_t) { poke(p, at, std::string(4096, '\0')); }},
  };
  for (const Tear& tear : tears) {
    SCOPED_TRACE(tear.name);
    ::unlink(path().c_str());
    two_commits();
    const std::size_t length = kStateSlotHeaderSize + serialize_state(state_with(2)).size();
    tear.apply(path(), 4096, length);
    EXPECT_EQ(decode_state_slots(bytes()).newest, 0);
    (void)store().take_notice();
    EXPECT_EQ(peeked_failures(), 1);
    // An unlocked read may meet a change being written: it reports nothing.
    EXPECT_EQ(store().take_notice(), "");
    EXPECT_EQ(locked_failures(), 1) << "the state before the torn write";
    // Under the lock it is reported, unless the slot is all zeros (a new file's second slot).
    const std::string notice = store().take_notice();
    if (std::string_view(tear.name) == "slot zeroed") {
      EXPECT_EQ(notice, "");
    } else {
      EXPECT_NE(notice.find("one of its two copies is damaged"), std::string::npos) << notice;
      EXPECT_NE(notice.find(path()), std::string::npos) << notice;
      EXPECT_NE(notice.find("change 1 "), std::string::npos) << notice;
      EXPECT_EQ(store().take_notice(), "") << "reported once";
    }
    // The next change goes into the torn slot, and the file is whole again.
    commit(state_with(9));
    (void)store().take_notice();  // the commit's own lock still found the damaged copy
    StateSlots s = decode_state_slots(bytes());
    EXPECT_EQ(s.newest, 1);
    EXPECT_EQ(s.sequence, 2u);
    EXPECT_EQ(locked_failures(), 9);
    EXPECT_EQ(store().take_notice(), "") << "whole again";
  }
}

TEST_F(StateSlotsTest, ATornOlderSlotChangesNothing) {
  two_commits();
  poke(path(), 100, "XXXX");  // inside slot 0's payload
  EXPECT_EQ(locked_failures(), 2);
  EXPECT_NE(store().take_notice().find("change 2 in the other copy was used"), std::string::npos);
  EXPECT_EQ(peeked_failures(), 2);
}

TEST_F(StateSlotsTest, BothSlotsBadIsCorruptNeverNoState) {
  two_commits();
  const std::string good = bytes();
  // A locked-out state that "no state" would silently unlock.
  UserState locked = state_with(7);
  locked.locked_until = kT0 + 3600;
  commit(locked);
  poke(path(), 100, "XXXX");
  poke(path(), 4096 + 100, "XXXX");
  expect_refused(Errc::kCorrupt, "both payloads damaged");
  auto txn = store().lock_state(alice_);
  ASSERT_FALSE(txn.ok());
  EXPECT_NE(txn.error().message.find(path()), std::string::npos) << txn.error().message;
  EXPECT_NE(txn.error().message.find("slots"), std::string::npos) << txn.error().message;
  EXPECT_EQ(txn.error().message.find("XXXX"), std::string::npos) << "a byte of the file shown";
  plant(std::string(8192, '\0'));
  expect_refused(Errc::kCorrupt, "all zeros");
  plant(good.substr(0, 4096) + good.substr(0, 4096));
  EXPECT_EQ(locked_failures(), 1) << "two copies of one slot: a valid file";
}

TEST_F(StateSlotsTest, ALoginOnACorruptFileFailsClosedAndWritesNothing) {
  Enrollment e = enroll(alice_);
  {
    FixedClock clock(kT0);
    Verifier v(config_, store(), clock);
    ASSERT_EQ(testing::verdict_of(v.verify(alice_, code_for_step(e, step_of(e, kT0)))),
              Verdict::kAccepted);
  }
  poke(path(), 100, "XXXX");
  poke(path(), 4096 + 100, "XXXX");
  testing::Snapshot before = snapshot(tmp_.path());
  FixedClock clock(kT0 + kStep);
  Verifier v(config_, store(), clock);
  auto out = v.verify(alice_, code_for_step(e, step_of(e, kT0 + kStep)));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kCorrupt);
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(StateSlotsTest, WrongSizesAreRefusedAndNothingWritten) {
  two_commits();
  const std::string good = bytes();
  plant("");
  expect_refused(Errc::kCorrupt, "empty");
  plant(good.substr(0, 4096));
  expect_refused(Errc::kCorrupt, "one slot");
  plant(good + "x");
  expect_refused(Errc::kCorrupt, "one byte more");
  plant(good + std::string(4096, '\0'));
  expect_refused(Errc::kCorrupt, "three slots");
  plant(good.substr(0, 8191));
  expect_refused(Errc::kCorrupt, "one byte short");
  plant(std::string(kMaxStateSlotFileSize + 8192, '\0'));
  expect_refused(Errc::kUnsafe, "over the cap");
  plant(serialize_state(state_with(1)) + std::string(kMaxStateFileSize, '#'));
  expect_refused(Errc::kUnsafe, "a text-format file over its old cap");
}

TEST_F(StateSlotsTest, HostileFilesAreRefusedAndNothingWritten) {
  two_commits();
  const std::string good = bytes();
  const std::string copy = tmp_ / "copy";
  ASSERT_TRUE(write_file(copy, good, 0600, 0, 0));

  ASSERT_EQ(::unlink(path().c_str()), 0);
  ASSERT_EQ(::symlink(copy.c_str(), path().c_str()), 0);
  expect_refused(Errc::kUnsafe, "symlink to a valid copy");
  EXPECT_EQ(read_file(copy), good);

  ASSERT_EQ(::unlink(path().c_str()), 0);
  ASSERT_EQ(::mkfifo(path().c_str(), 0600), 0);
  expect_refused(Errc::kUnsafe, "fifo");

  ASSERT_EQ(::unlink(path().c_str()), 0);
  ASSERT_EQ(::mkdir(path().c_str(), 0700), 0);
  expect_refused(Errc::kUnsafe, "directory");
  ASSERT_EQ(::rmdir(path().c_str()), 0);

  // A hard link: a change in place would write into the other name's file too.
  ASSERT_EQ(::link(copy.c_str(), path().c_str()), 0);
  expect_refused(Errc::kUnsafe, "second hard link");
  EXPECT_EQ(read_file(copy), good);
  ASSERT_EQ(::unlink(path().c_str()), 0);

  for (mode_t mode : {0640, 0604, 0660, 0606, 0620}) {
    plant(good, mode);
    expect_refused(Errc::kUnsafe, "mode " + std::to_string(mode));
  }
  plant(good, 0600, kOtherUid);
  expect_refused(Errc::kUnsafe, "owned by 65534");

  plant(good);
  EXPECT_EQ(locked_failures(), 2) << "the same bytes, well kept, are read";
}

TEST_F(StateSlotsTest, TextFormatIsReadThenConvertedByTheFirstChange) {
  UserState old = state_with(3);
  old.locked_until = kT0 + 600;
  const std::string text = serialize_state(old);
  ASSERT_EQ(text.rfind("version ", 0), 0u);
  plant(text);
  const ino_t text_ino = inode();
  EXPECT_EQ(locked_failures(), 3);
  EXPECT_EQ(peeked_failures(), 3);
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    EXPECT_EQ(txn.value()->state().locked_until, kT0 + 600);
  }
  EXPECT_EQ(bytes(), text) << "reading changed it";
  commit(state_with(4));
  const std::string b = bytes();
  ASSERT_EQ(b.size(), 8192u);
  EXPECT_FALSE(is_text_state_file(b));
  EXPECT_EQ(decode_state_slots(b).newest, 0);
  EXPECT_EQ(decode_state_slots(b).sequence, 1u);
  EXPECT_NE(inode(), text_ino) << "converted by a new file (temp file and rename)";
  EXPECT_EQ(locked_failures(), 4);
  const ino_t slots_ino = inode();
  commit(state_with(5));
  EXPECT_EQ(inode(), slots_ino);
  EXPECT_EQ(decode_state_slots(bytes()).newest, 1);
  EXPECT_EQ(peeked_failures(), 5);
}

TEST_F(StateSlotsTest, BiggerSlotsAreReadAndKept) {
  plant(encode_state_file(serialize_state(state_with(4)), 10, 8192));
  const ino_t ino = inode();
  EXPECT_EQ(locked_failures(), 4);
  commit(state_with(5));
  const std::string b = bytes();
  EXPECT_EQ(b.size(), 16384u);
  EXPECT_EQ(decode_state_slots(b).newest, 1);
  EXPECT_EQ(decode_state_slots(b).sequence, 11u);
  EXPECT_EQ(inode(), ino);
  EXPECT_EQ(peeked_failures(), 5);
}

TEST_F(StateSlotsTest, RemoveAndResetStillWork) {
  Enrollment e = enroll(alice_);
  two_commits();
  ASSERT_TRUE(is_ok(store().remove(alice_)));
  EXPECT_FALSE(testing::exists_nofollow(path()));
  EXPECT_EQ(locked_failures(), 0) << "no file: no state";
  (void)e;
}

// A change between two unlocked reads: the read is taken again and the newer state returned. A
// change between every two reads: an error, never an unconfirmed read (one pread copies the two
// slots at different moments, so it may hold a slot two changes old).
TEST_F(StateSlotsTest, AnUnlockedReadIsNeverReturnedUnconfirmed) {
  commit(state_with(1));
  int next = 2;
  int reads = 0;
  auto change = [&](int) {
    ++reads;
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn.value()->commit(state_with(next++)).ok());
  };
  g_after_state_read = [&](int attempt) {
    if (attempt == 1) change(attempt);
  };
  auto once = store().peek_state(alice_);
  ASSERT_TRUE(once.ok()) << once.error().message;
  EXPECT_EQ(once->failures, 2);  // the state after the change, read twice alike

  reads = 0;
  g_after_state_read = change;
  auto always = store().peek_state(alice_);
  g_after_state_read = nullptr;
  EXPECT_EQ(reads, 6);
  ASSERT_FALSE(always.ok()) << "returned a read no second read confirmed";
  EXPECT_EQ(always.error().code, Errc::kIo);
  EXPECT_NE(always.error().message.find("changing too fast"), std::string::npos)
      << always.error().message;
  EXPECT_EQ(locked_failures(), next - 1);  // the changes themselves all landed
}

// Reads without the lock while another process writes change after change: every read is one
// whole state (a slot torn under the reader falls back to the other, or is read again).
TEST_F(StateSlotsTest, UnlockedReadsDuringChangesSeeWholeStates) {
  commit(state_with(0));
  // The writer publishes each change it has committed: a read that begins after it must see
  // that change or a later one, never an older state (a slot two changes old next to a torn one).
  auto* committed = static_cast<std::atomic<int>*>(::mmap(nullptr, sizeof(std::atomic<int>),
                                                          PROT_READ | PROT_WRITE,
                                                          MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(committed, MAP_FAILED);
  new (committed) std::atomic<int>(0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto opened = open_store(config_);
    if (!opened.ok()) ::_exit(2);
    for (int i = 1; i <= 500; ++i) {
      auto txn = opened.value()->lock_state(alice_);
      if (!txn.ok() || !txn.value()->commit(state_with(i % 1000)).ok()) ::_exit(1);
      committed->store(i);
    }
    ::_exit(0);
  }
  int reads = 0;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    const int before = committed->load();
    auto s = store().peek_state(alice_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_EQ(s->enrollment_id, std::string(kIdA));
    ASSERT_EQ(s->last_success, kT0);
    ASSERT_GE(s->failures, before) << "an unlocked read went back behind a committed change";
    ASSERT_LT(s->failures, 1000);
    ++reads;
  }
  ::munmap(committed, sizeof(std::atomic<int>));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the writer failed";
  EXPECT_GT(reads, 0);
  EXPECT_EQ(peeked_failures(), 500);
}

// ---------------------------------------------------------------------------------------------
// Crashes between the slot write and its sync

class StateSlotsCrashTest : public StateSlotsTest {
 protected:
  void SetUp() override {
    StateSlotsTest::SetUp();
    if (IsSkipped()) return;
    e_ = enroll(alice_);
    FixedClock clock(kT0);
    Verifier v(config_, store(), clock);
    ASSERT_EQ(testing::verdict_of(v.verify(alice_, code(kT0))), Verdict::kAccepted);
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    before_ = txn.value()->state();
  }

  std::string code(std::int64_t t) const { return code_for_step(e_, step_of(e_, t)); }

  // A login at kT0 + 30 with its right code, in a child that `fault` stops after the slot
  // write: it must die there (SIGKILL), before any answer.
  void killed_login(SlotFault fault) {
    const std::string c = code(kT0 + kStep);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      g_slot_fault = fault;
      auto opened = open_store(config_);
      if (!opened.ok()) ::_exit(2);
      FixedClock clock(kT0 + kStep);
      Verifier v(config_, *opened.value(), clock);
      auto out = v.verify(alice_, c);
      ::_exit(out.ok() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the login was not stopped at its slot write (exit " << WEXITSTATUS(status) << ")";
  }

  // The state read with and without the lock: the same, whole.
  UserState read_both() {
    auto peeked = store().peek_state(alice_);
    EXPECT_TRUE(is_ok(peeked));
    UserState locked = read_state(alice_);
    EXPECT_EQ(serialize_state(locked), peeked.ok() ? serialize_state(*peeked) : "");
    return locked;
  }

  Enrollment e_;
  UserState before_;
};

TEST_F(StateSlotsCrashTest, KillBetweenSlotWriteAndSyncLeavesOldOrNewWhole) {
  killed_login(kKill);
  UserState after = read_both();
  const std::int64_t old_step = mark(before_).last_step;
  const std::int64_t new_step = step_of(e_, kT0 + kStep);
  if (mark(after).last_step == old_step) {
    EXPECT_EQ(serialize_state(after), serialize_state(before_)) << "neither old nor new";
  } else {
    // The process died, the kernel kept its write: the new state, whole.
    EXPECT_EQ(mark(after).last_step, new_step);
    EXPECT_EQ(after.enrollment_id, before_.enrollment_id);
    EXPECT_EQ(after.failures, 0);
  }
  // The next login decides from that state: the code is accepted at most once.
  FixedClock clock(kT0 + kStep);
  Verifier v(config_, store(), clock);
  auto first = testing::verdict_of(v.verify(alice_, code(kT0 + kStep)));
  auto second = testing::verdict_of(v.verify(alice_, code(kT0 + kStep)));
  EXPECT_EQ(second, Verdict::kReplayed) << "accepted twice";
  EXPECT_EQ(first, mark(after).last_step == old_step ? Verdict::kAccepted : Verdict::kReplayed);
}

// A power cut before the sync, modelled: only a part of the new slot reached the disk.
TEST_F(StateSlotsCrashTest, PowerCutBeforeTheSyncLeavesTheOldState) {
  for (SlotFault fault : {kTearTail, kTearHeader, kWriteNothing}) {
    SCOPED_TRACE(static_cast<int>(fault));
    const std::string file_before = bytes();
    killed_login(fault);
    EXPECT_NE(bytes(), file_before) << "the fault did not touch the file";
    UserState after = read_both();
    EXPECT_EQ(serialize_state(after), serialize_state(before_)) << "not the old state";
  }
  // The login that was cut never answered: its code is still good, once.
  FixedClock clock(kT0 + kStep);
  Verifier v(config_, store(), clock);
  EXPECT_EQ(testing::verdict_of(v.verify(alice_, code(kT0 + kStep))), Verdict::kAccepted);
  EXPECT_EQ(testing::verdict_of(v.verify(alice_, code(kT0 + kStep))), Verdict::kReplayed);
}

}  // namespace
}  // namespace pbx::totp
