# Packaging of fathom-bridge: what `cmake --install` puts where, the pkg-config file, the CMake
# package config (find_package(fathom_bridge CONFIG) -> fathom_bridge::fathom_bridge), the
# exported-symbol policy of the shared library, and a cpack .deb.
#
#   <prefix>/include/fathom_bridge/fathom_bridge.h     the C ABI (the only public header)
#   <prefix>/lib/libfathom_bridge.so.0.1.0 (.so.0, .so) SONAME libfathom_bridge.so.0
#   <prefix>/bin/fathom-bridge                          the CLI and sidecar
#   <prefix>/bin/fathom-sim                             only with -DFB_INSTALL_SIM=ON
#   <prefix>/share/fathom-bridge/scripts/               default Lua scripts + the scripting guide
#   <prefix>/lib/pkgconfig/fathom-bridge.pc
#   <prefix>/lib/cmake/fathom_bridge/                   the CMake package config
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(FB_INSTALL_SIM "Also install fathom-sim (the Fathom simulator) into bin/" OFF)
set(FB_SCRIPTS_INSTALL_DIR ${CMAKE_INSTALL_DATADIR}/fathom-bridge/scripts)
set(FB_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fathom_bridge)

# ---- Only the C ABI is exported from the shared library ----
# Hidden visibility for the library's own code (FB_API marks the fb_* functions default), the
# static core archives linked with --exclude-libs, and a version script that keeps anything else
# local even where a header forces default visibility (template instantiations of nlohmann,
# simdjson, libstdc++). tests/install/check_exports.sh checks the result.
set(FB_EXPORTS_MAP ${CMAKE_CURRENT_LIST_DIR}/fathom_bridge.map)
set_target_properties(fathom_bridge PROPERTIES C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
                                               VISIBILITY_INLINES_HIDDEN ON)
target_link_options(fathom_bridge PRIVATE "LINKER:--version-script=${FB_EXPORTS_MAP}" "LINKER:--exclude-libs,ALL")
# Every symbol resolved at link time, except in a clang sanitizer build (the asan stage): clang links
# its sanitizer runtime into executables only, so the library's __asan_* calls resolve when loaded.
if(NOT (FB_SANITIZE AND CMAKE_CXX_COMPILER_ID MATCHES "Clang"))
  target_link_options(fathom_bridge PRIVATE "LINKER:--no-undefined")
endif()
set_property(TARGET fathom_bridge APPEND PROPERTY LINK_DEPENDS ${FB_EXPORTS_MAP})
# In the build tree the header comes from the source tree; installed, from <prefix>/include.
set_property(TARGET fathom_bridge PROPERTY INTERFACE_INCLUDE_DIRECTORIES
             "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/plugin/include>" "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")

# ---- Install rules ----
install(TARGETS fathom_bridge EXPORT fathom_bridgeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/plugin/include/fathom_bridge/fathom_bridge.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fathom_bridge COMPONENT dev)
install(TARGETS fathom-bridge RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
if(FB_INSTALL_SIM AND TARGET fathom-sim)
  install(TARGETS fathom-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/ DESTINATION ${FB_SCRIPTS_INSTALL_DIR} COMPONENT runtime
        FILES_MATCHING PATTERN "*.lua" PATTERN "*.md" PATTERN ".luarc.json")

# pkg-config: the prefix is found from the .pc file's own place (${pcfiledir}), so the install
# can be moved (cmake --install --prefix, DESTDIR, a .deb) and still points at itself.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(FB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH fb_pc_up "/fb/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/fb")
  set(FB_PC_PREFIX "\${pcfiledir}/${fb_pc_up}")
endif()
foreach(v LIBDIR INCLUDEDIR DATADIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${v}}")
    set(FB_PC_${v} "${CMAKE_INSTALL_${v}}")
  else()
    set(FB_PC_${v} "\${prefix}/${CMAKE_INSTALL_${v}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/fathom-bridge.pc.in ${PROJECT_BINARY_DIR}/fathom-bridge.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fathom-bridge.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# CMake package config, relocatable (paths relative to the config file).
install(EXPORT fathom_bridgeTargets NAMESPACE fathom_bridge:: DESTINATION ${FB_CMAKE_INSTALL_DIR} COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/fathom_bridgeConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/fathom_bridgeConfig.cmake
                              INSTALL_DESTINATION ${FB_CMAKE_INSTALL_DIR}
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR FB_SCRIPTS_INSTALL_DIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fathom_bridgeConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fathom_bridgeConfig.cmake ${PROJECT_BINARY_DIR}/fathom_bridgeConfigVersion.cmake
        DESTINATION ${FB_CMAKE_INSTALL_DIR} COMPONENT dev)

# ---- cpack: `cpack -G DEB` in the build directory makes fathom-bridge_<version>_<arch>.deb ----
set(CPACK_PACKAGE_NAME fathom-bridge)
set(CPACK_PACKAGE_VENDOR "fathom-bridge")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Connects a CRM to Fathom (C ABI library, CLI, sidecar, Lua scripts)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "fathom-bridge maintainers <fathom-bridge@localhost>")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
find_program(FB_DPKG_SHLIBDEPS dpkg-shlibdeps)  # from dpkg-dev: computes Depends from the binaries
if(FB_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)

# fb_invoke (bindings/c/c_invoke.cpp): the C ABI by operation name, for bindings whose calls hop threads.
target_sources(fathom_bridge PRIVATE ${PROJECT_SOURCE_DIR}/bindings/c/c_invoke.cpp)
