// stmt_runs.h: how many statements this thread has executed through the store seam (on any Db,
// either engine): each Stmt::run, and each query stepped from its start (one per execution, however
// many rows it returns). Tests use it to check what a piece of bookkeeping costs in statements
// (issue 11: record_batch stores and marks a mapped meeting with one, reading nothing first). Kept
// out of db.h, which every store includes.
#pragma once

#include <cstdint>

namespace fb::detail {

// Statements executed on the calling thread so far. Thread-safe: each thread has its own count.
uint64_t stmt_runs_on_this_thread();

}  // namespace fb::detail
