# host-sdk/: the ABI header, libchaski-host (static and shared), the chaski command, bindings.
# Depends on libdl and pthreads only: a host never links the engine.
set(CHASKI_HOST_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/plugin.c
  ${CMAKE_CURRENT_SOURCE_DIR}/src/model.c)

add_library(chaski_host_static STATIC ${CHASKI_HOST_SOURCES})
add_library(chaski_host SHARED ${CHASKI_HOST_SOURCES})
foreach(t chaski_host_static chaski_host)
  set_target_properties(${t} PROPERTIES OUTPUT_NAME chaski-host C_VISIBILITY_PRESET hidden)
  target_include_directories(${t} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(${t} PUBLIC Threads::Threads ${CMAKE_DL_LIBS})
endforeach()
set_target_properties(chaski_host PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION 1)
target_link_options(chaski_host PRIVATE "LINKER:-z,defs")
add_library(chaski::host ALIAS chaski_host)
add_library(chaski::host_static ALIAS chaski_host_static)

# the command-line host: only the host SDK (it dlopens the plugin like any host)
add_executable(chaski
  cli/main.c
  cli/util.c
  cli/cmd_run.c
  cli/cmd_text.c
  cli/cmd_model.c)
target_link_libraries(chaski PRIVATE chaski_host_static)
target_compile_definitions(chaski PRIVATE CHASKI_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
if(TARGET chaski_plugin)
  add_dependencies(chaski chaski_plugin)
endif()

# ---- install: headers, libraries, CMake package, pkg-config ----
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(FILES include/chaski.h include/chaski_host.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS chaski_host chaski_host_static EXPORT chaskiTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS chaski RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET chaski_plugin)
  install(TARGETS chaski_plugin LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(EXPORT chaskiTargets NAMESPACE chaski:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/chaski)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/chaskiConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/chaskiConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/chaski)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/chaskiConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/chaskiConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/chaskiConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/chaski)
file(RELATIVE_PATH CHASKI_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/chaski-host.pc.in ${CMAKE_CURRENT_BINARY_DIR}/chaski-host.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/chaski-host.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The Python binding's unittest is registered in tests/abi/CMakeLists.txt (it needs the
# tiny-model writer defined there).
