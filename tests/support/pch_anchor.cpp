// The unit of fb_test_pch (CMakeLists.txt, fb_test): compiled with the suites' flags so that they
// can reuse the headers it precompiles. It has no code of its own.
