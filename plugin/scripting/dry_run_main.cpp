// fb-script-test: the dry run as a standalone program (the same code as `fathom-bridge script test`).
#include <iostream>

#include "scripting/dry_run.h"

int main(int argc, char** argv) { return fb::detail::run_script_test(argc, argv, std::cout, std::cerr); }
