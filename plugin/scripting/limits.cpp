#include "scripting/limits.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace fb::detail {
namespace {

constexpr size_t kStopHeadroom = 1 << 20;  // lets the stop error itself be built and raised

// ThreadSanitizer does not model membarrier: under it the worker takes the RMW path, which it does.
#if defined(__SANITIZE_THREAD__)
constexpr bool kUseMembarrier = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kUseMembarrier = false;
#else
constexpr bool kUseMembarrier = true;
#endif
#else
constexpr bool kUseMembarrier = true;
#endif

bool membarrier_ready() {
  static const bool ready = [] {
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (q < 0 || !(q & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ready;
}

}  // namespace

std::string lua_location(lua_State* L) {
  lua_Debug ar;
  for (int level = 0; level < 64 && lua_getstack(L, level, &ar); ++level) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      return std::string(ar.short_src) + ":" + std::to_string(ar.currentline) + ": ";
    }
  }
  return "";
}

bool budget_stopped(lua_State* L) {
  void* ud = nullptr;
  if (lua_getallocf(L, &ud) != &StateLimits::alloc) return false;
  return static_cast<const StateLimits*>(ud)->stopped();
}

namespace {

struct UnwindProbe {
  bool* ran;
  ~UnwindProbe() { *ran = true; }
};

int probe_raise(lua_State* L) {
  auto* ran = static_cast<bool*>(lua_touserdata(L, 1));
  UnwindProbe p{ran};
  return luaL_error(L, "probe");
}

}  // namespace

bool lua_errors_unwind_cxx() {
  static const bool ok = [] {
    bool ran = false;
    lua_State* L = luaL_newstate();
    if (!L) return false;
    lua_pushcfunction(L, probe_raise);
    lua_pushlightuserdata(L, &ran);
    lua_pcall(L, 1, 0, 0);
    lua_close(L);
    return ran;
  }();
  return ok;
}

StateLimits::StateLimits(BudgetLimits limits) : limits_(limits) {
  stop_message_.reserve(512);
  membarrier_ready();
}

int64_t StateLimits::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The worker's side of the arming handshake (limits.h). The stores that unlinked the block being
// freed must be visible to a watchdog that then walks the CallInfo list, or the worker must see
// that the watchdog is walking and wait. With membarrier the watchdog's barrier orders the worker's
// stores before this relaxed load. Without it (or under ThreadSanitizer, which models neither
// membarrier nor a lone fence), a read-modify-write on arming_ does: RMWs of one atomic are
// totally ordered, so either ours comes first and the watchdog's exchange reads its value (ours
// is a release, the exchange an acquire: our stores happen before the walk), or the exchange
// comes first and we read 1 and wait for its release store of 0 (the walk happens before the free).
void StateLimits::wait_while_arming() {
  if (kUseMembarrier && membarrier_ready()) {
    if (!arming_.load(std::memory_order_relaxed)) return;
  } else if (arming_.fetch_add(0, std::memory_order_seq_cst) == 0) {
    return;
  }
  while (arming_.load(std::memory_order_acquire)) std::this_thread::yield();
}

SmallBlockPool::~SmallBlockPool() {
  for (void* c : chunks_) std::free(c);
}

void* SmallBlockPool::get(size_t n) {
  size_t cls = (n + 15) / 16 - 1;
  if (Node* node = free_[cls]) {
    free_[cls] = node->next;
    return node;
  }
  size_t size = (cls + 1) * 16;
  if (bump_left_ < size) {
    // The tail of the old chunk goes to the free lists rather than being wasted.
    while (bump_left_ >= 16) {
      size_t c = std::min(bump_left_, kMaxSmall) / 16 - 1;
      put(bump_, (c + 1) * 16);
      bump_ += (c + 1) * 16;
      bump_left_ -= (c + 1) * 16;
    }
    void* chunk = std::malloc(kChunk);
    if (!chunk) return nullptr;
    chunks_.push_back(chunk);
    bump_ = static_cast<char*>(chunk);
    bump_left_ = kChunk;
  }
  void* p = bump_;
  bump_ += size;
  bump_left_ -= size;
  return p;
}

void SmallBlockPool::put(void* p, size_t n) {
  size_t cls = (n + 15) / 16 - 1;
  auto* node = static_cast<Node*>(p);
  node->next = free_[cls];
  free_[cls] = node;
}

void* StateLimits::alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* self = static_cast<StateLimits*>(ud);
  constexpr size_t kSmall = SmallBlockPool::kMaxSmall;
  if (nsize == 0) {
    if (ptr) {
      // A freed block may be a CallInfo the watchdog is walking (see limits.h).
      self->wait_while_arming();
      if (osize <= kSmall) {
        self->pool_.put(ptr, osize);
      } else {
        std::free(ptr);
      }
      self->used_ -= osize;
    }
    return nullptr;
  }
  size_t old = ptr ? osize : 0;  // without ptr, osize is the kind of object, not a size
  size_t cap = static_cast<size_t>(self->limits_.memory_limit_bytes) +
               (self->stop_ != StopReason::kNone ? kStopHeadroom : 0);
  if (nsize > old && self->used_ - old + nsize > cap) {
    self->on_refused(nsize);
    return nullptr;
  }
  void* p;
  if (!ptr) {
    p = nsize <= kSmall ? self->pool_.get(nsize) : std::malloc(nsize);
  } else if (old <= kSmall && nsize <= kSmall && SmallBlockPool::same_class(old, nsize)) {
    p = ptr;
  } else if (old > kSmall && nsize > kSmall) {
    p = std::realloc(ptr, nsize);
  } else {
    // Between the pool and malloc, or between pool classes: move the bytes.
    p = nsize <= kSmall ? self->pool_.get(nsize) : std::malloc(nsize);
    if (p) {
      std::memcpy(p, ptr, std::min(old, nsize));
      self->wait_while_arming();
      if (old <= kSmall) {
        self->pool_.put(ptr, old);
      } else {
        std::free(ptr);
      }
    }
  }
  if (!p) return nullptr;
  self->used_ = self->used_ - old + nsize;
  if (self->used_ > self->peak_) self->peak_ = self->used_;
  return p;
}

bool StateLimits::charge(size_t n) {
  if (used_ + n > static_cast<size_t>(limits_.memory_limit_bytes) || used_ + n < n) {
    on_refused(n);
    return false;
  }
  used_ += n;
  if (used_ > peak_) peak_ = used_;
  return true;
}

void StateLimits::on_refused(size_t nsize) {
  (void)nsize;
  if (stop_ != StopReason::kNone || !L_ || !active_.load(std::memory_order_relaxed)) return;
  // Lua raises its own "not enough memory" (which a pcall could catch); the sticky stop makes
  // the next instruction raise ours, with the place where the memory ran out.
  record_stop(L_, StopReason::kMemory);
  arm_every_instruction(L_);
}

void StateLimits::record_stop(lua_State* L, StopReason reason) {
  stop_ = reason;
  stop_message_ = lua_location(L);
  switch (reason) {
    case StopReason::kTime:
      stop_message_ += "script exceeded its time budget of " + std::to_string(limits_.time_limit_ms) +
                       " ms (scripts.time_limit_ms)";
      break;
    case StopReason::kInstructions:
      stop_message_ += "script exceeded its instruction budget of " + std::to_string(limits_.instruction_limit) +
                       " (scripts.instruction_limit)";
      break;
    case StopReason::kMemory:
      stop_message_ += "script exceeded its memory limit of " +
                       std::to_string(limits_.memory_limit_bytes >> 20) + " MiB (scripts.memory_limit_bytes)";
      break;
    case StopReason::kDepth:
      stop_message_ += "script exceeded the call depth limit of " + std::to_string(limits_.max_call_depth) +
                       " (scripts.max_call_depth)";
      break;
    case StopReason::kCrmCalls:
      stop_message_ += "script exceeded its limit of " + std::to_string(limits_.crm_calls) +
                       " CRM calls per event (scripts.crm_calls_per_event)";
      break;
    case StopReason::kNone: break;
  }
}

void StateLimits::stop_crm_calls() {
  if (stop_ != StopReason::kNone || !L_ || !active_.load(std::memory_order_relaxed)) return;
  record_stop(L_, StopReason::kCrmCalls);
  arm_every_instruction(L_);
}

void StateLimits::arm_every_instruction(lua_State* L) {
  std::lock_guard lock(arm_mu_);
  armed_ = true;
  hook_every_.store(1, std::memory_order_relaxed);
  lua_sethook(L, &StateLimits::hook, LUA_MASKCOUNT, 1);
}

void StateLimits::begin_call() {
  stop_ = StopReason::kNone;
  stop_message_.clear();
  instructions_ = 0;
  host_ns_.store(0, std::memory_order_relaxed);
  host_since_.store(0, std::memory_order_relaxed);
  start_ns_.store(now_ns(), std::memory_order_relaxed);
  if (limits_.always_armed) {
    std::lock_guard lock(arm_mu_);
    armed_ = true;
    hook_every_.store(kHookEvery, std::memory_order_relaxed);
    lua_sethook(L_, &StateLimits::hook, LUA_MASKCOUNT, kHookEvery);
  }
  active_.store(true, std::memory_order_release);
}

void StateLimits::end_call() {
  {
    std::lock_guard lock(arm_mu_);
    active_.store(false, std::memory_order_release);
    if (armed_) {
      lua_sethook(L_, nullptr, 0, 0);
      armed_ = false;
    }
    hook_every_.store(kHookEvery, std::memory_order_relaxed);
  }
  used_snapshot_.store(used_, std::memory_order_relaxed);
  peak_snapshot_.store(peak_, std::memory_order_relaxed);
}

void StateLimits::host_begin() { host_since_.store(now_ns(), std::memory_order_relaxed); }

void StateLimits::host_end() {
  int64_t since = host_since_.exchange(0, std::memory_order_relaxed);
  if (since) host_ns_.fetch_add(now_ns() - since, std::memory_order_relaxed);
}

int64_t StateLimits::script_ns(int64_t now) const {
  int64_t since = host_since_.load(std::memory_order_relaxed);
  int64_t in_host = host_ns_.load(std::memory_order_relaxed) + (since ? now - since : 0);
  return now - start_ns_.load(std::memory_order_relaxed) - in_host;
}

void StateLimits::watchdog_check(int64_t now) {
  if (!active_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(arm_mu_);
  if (!active_.load(std::memory_order_acquire) || hook_every_.load(std::memory_order_relaxed) == 1) return;
  if (host_since_.load(std::memory_order_relaxed) != 0) return;  // in a host call: nothing to interrupt
  int64_t used = script_ns(now);
  if (!armed_) {
    if (used < static_cast<int64_t>(limits_.watchdog_ms) * 1'000'000) return;
    arm_from_watchdog(kHookEvery);
    armed_ = true;
    return;
  }
  // Armed, and over the time budget without the hook having seen it: C calls between two hooks
  // (a sort, a long string.rep) can take seconds each, and a thousand instructions hold hundreds
  // of them. From now on the hook looks at every instruction, so the next one stops the call.
  if (used > static_cast<int64_t>(limits_.time_limit_ms) * 1'000'000) arm_from_watchdog(1);
}

// Watchdog thread, arm_mu_ held: sets the count hook of the running call (see limits.h).
void StateLimits::arm_from_watchdog(int every) {
  arming_.exchange(1, std::memory_order_seq_cst);  // an RMW: see wait_while_arming
  if (kUseMembarrier && membarrier_ready()) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  hook_every_.store(every, std::memory_order_relaxed);
  lua_sethook(L_, &StateLimits::hook, LUA_MASKCOUNT, every);
  arming_.store(0, std::memory_order_release);
}

void StateLimits::hook(lua_State* L, lua_Debug* ar) {
  (void)ar;
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  static_cast<StateLimits*>(ud)->on_hook(L);
}

void StateLimits::on_hook(lua_State* L) {
  if (stop_ != StopReason::kNone) {
    lua_pushlstring(L, stop_message_.data(), stop_message_.size());
    lua_error(L);
  }
  instructions_ += hook_every_.load(std::memory_order_relaxed);
  if (instructions_ > limits_.instruction_limit) trip(L, StopReason::kInstructions);
  if (script_ns(now_ns()) > static_cast<int64_t>(limits_.time_limit_ms) * 1'000'000) trip(L, StopReason::kTime);
  lua_Debug ar;
  if (lua_getstack(L, limits_.max_call_depth, &ar)) trip(L, StopReason::kDepth);
}

void StateLimits::trip(lua_State* L, StopReason reason) {
  record_stop(L, reason);
  arm_every_instruction(L);
  lua_pushlstring(L, stop_message_.data(), stop_message_.size());
  lua_error(L);
  std::abort();  // unreachable
}

// ---------------------------------------------------------------- Watchdog

Watchdog::Watchdog(int tick_ms) : tick_ms_(tick_ms < 2 ? 1 : tick_ms / 2) { thread_ = std::thread([this] { run(); }); }

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::add(StateLimits* s) {
  std::lock_guard lock(mu_);
  states_.push_back(s);
}

void Watchdog::remove(StateLimits* s) {
  std::lock_guard lock(mu_);
  std::erase(states_, s);
}

void Watchdog::call_started() {
  // seq_cst on both sides: either run() sees the call before it sleeps, or we see it asleep.
  active_calls_.fetch_add(1);
  if (idle_.load()) {
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }
}

void Watchdog::call_finished() { active_calls_.fetch_sub(1); }

void Watchdog::run() {
  constexpr int64_t kIdleAfterNs = 1'000'000'000;  // stay ticking through short gaps in traffic
  std::unique_lock lock(mu_);
  int64_t last_busy = StateLimits::now_ns();
  while (!stop_) {
    if (idle_.load()) {
      cv_.wait(lock, [&] { return stop_ || active_calls_.load() > 0; });
      idle_.store(false);
      last_busy = StateLimits::now_ns();
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(tick_ms_), [&] { return stop_; });
    if (stop_) break;
    int64_t now = StateLimits::now_ns();
    for (StateLimits* s : states_) s->watchdog_check(now);
    if (active_calls_.load() > 0) {
      last_busy = now;
    } else if (now - last_busy > kIdleAfterNs) {
      idle_.store(true);  // no call for a while: sleep until one starts
    }
  }
}

}  // namespace fb::detail
