// sync_progress.h: how the command line follows a sync job (`fathom-bridge sync`, `sync watch`).
//
//   FollowOptions f{.json = false, .cancel_on_interrupt = true};
//   int exit_code = follow_sync_job(bridge, caller, job_id, f, std::cout, std::cerr);
//
// Polls Bridge::sync_job until the job ends. On a terminal (stderr is a tty) it redraws one
// progress line (bar when the covered part of the window is known, pages, meetings, API budget
// left, ETA); otherwise it writes a plain line when the job moved, at most every few seconds, and
// at least every interval_s. At the end it prints the job: a summary line, or the job record as
// indented JSON with json. SIGINT: with cancel_on_interrupt, the first asks the job to stop at its
// next page boundary and keeps following it to its end; a second one exits 130 at once. Without
// it (watching another process's job), SIGINT stops following (exit 130).
//
// Exit codes (also in the usage text): 0 succeeded; 1 failed, succeeded_with_errors (meetings
// failed to map or were refused by the store), skipped or interrupted; 3 cancelled; 130 stopped
// following on SIGINT.
#pragma once

#include <cstdint>
#include <ostream>

#include "fathom_bridge/bridge.h"

namespace fb::cli {

struct FollowOptions {
  bool json = false;                 // print the final job as JSON (progress still goes to err)
  bool cancel_on_interrupt = false;  // SIGINT cancels the job (its own sync) instead of detaching
  int poll_ms = 250;
  int interval_s = 10;               // non-terminal: a line at least this often
};

// The exit code for a job's final status (see above).
int exit_code_for(const std::string& status);

int follow_sync_job(Bridge& bridge, const Caller& caller, int64_t job_id, const FollowOptions& options,
                    std::ostream& out, std::ostream& err);

}  // namespace fb::cli
