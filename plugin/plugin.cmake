# libchaski.so: the ABI (host-sdk/include/chaski.h) implemented on the engine.
# Exports exactly chaski_plugin_entry (plugin/chaski.map); Lua and every static dependency
# are linked in and hidden.
if(NOT TARGET chaski_tok OR NOT TARGET chaski_sample OR NOT TARGET chaski_sched)
  message(STATUS "plugin: libchaski.so not built yet (needs chaski_tok, chaski_sample, chaski_sched)")
  return()
endif()

# Lua must be linked in statically, which needs a position-independent liblua. Debian's
# liblua5.4.a is not (its objects use R_X86_64_PC32 against stdout/stderr), so check once; if it
# cannot go into a shared object, fall back to the shared liblua5.4.so with a loud warning (the
# plugin then works, but `ldd` shows Lua and a host embedding its own Lua 5.4 may clash).
get_target_property(_chaski_lua_imported chaski_lua54 IMPORTED)
get_target_property(_chaski_lua_lib chaski_lua54 IMPORTED_LOCATION)
if(NOT _chaski_lua_imported)
  set(CHASKI_LUA_STATIC_IS_PIC ON)   # built from source here, position-independent
elseif(NOT DEFINED CHASKI_LUA_STATIC_IS_PIC OR NOT "${CHASKI_LUA_PIC_CHECKED}" STREQUAL "${_chaski_lua_lib}")
  set(_dir ${CMAKE_BINARY_DIR}/CMakeFiles/chaski_lua_pic_check)
  file(WRITE ${_dir}/src/CMakeLists.txt
"cmake_minimum_required(VERSION 3.25)
project(lua_pic C)
add_library(probe SHARED probe.c)
target_link_libraries(probe PRIVATE \"${_chaski_lua_lib}\" m)
target_link_options(probe PRIVATE \"LINKER:--whole-archive\" \"${_chaski_lua_lib}\" \"LINKER:--no-whole-archive\")
")
  file(WRITE ${_dir}/src/probe.c "int probe(void);\nint probe(void) { return 0; }\n")
  try_compile(_pic ${_dir}/build ${_dir}/src lua_pic OUTPUT_VARIABLE _out)
  set(CHASKI_LUA_STATIC_IS_PIC ${_pic} CACHE BOOL "Whether the static Lua library can be linked into libchaski.so" FORCE)
  set(CHASKI_LUA_PIC_CHECKED "${_chaski_lua_lib}" CACHE INTERNAL "The Lua library CHASKI_LUA_STATIC_IS_PIC is about")
endif()
if(NOT CHASKI_LUA_STATIC_IS_PIC)
  string(REPLACE ".a" ".so" _chaski_lua_so "${_chaski_lua_lib}")
  if(EXISTS "${_chaski_lua_so}")
    message(WARNING "plugin: ${_chaski_lua_lib} is not position-independent and cannot be linked into "
                    "libchaski.so; linking ${_chaski_lua_so} instead (ldd will show Lua). Fix: build a PIC "
                    "static Lua 5.4 in cmake/deps.cmake.")
    set_target_properties(chaski_lua54 PROPERTIES IMPORTED_LOCATION "${_chaski_lua_so}")
  endif()
endif()

add_library(chaski_plugin SHARED
  entry.c
  runtime.c
  model.c
  text.c
  job.c
)
set_target_properties(chaski_plugin PROPERTIES
  OUTPUT_NAME chaski
  C_VISIBILITY_PRESET hidden
  LINK_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/chaski.map)
target_include_directories(chaski_plugin PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/host-sdk/include)
target_compile_definitions(chaski_plugin PRIVATE CHASKI_PLUGIN_VERSION="${PROJECT_VERSION}")
target_link_libraries(chaski_plugin PRIVATE chaski_sched chaski_engine chaski_tok chaski_sample Threads::Threads m)
if(TARGET chaski_script)
  target_link_libraries(chaski_plugin PRIVATE chaski_script)
  target_compile_definitions(chaski_plugin PRIVATE CHASKI_HAVE_SCRIPT=1)
endif()
target_link_options(chaski_plugin PRIVATE
  "LINKER:--version-script=${CMAKE_CURRENT_SOURCE_DIR}/chaski.map"
  "LINKER:-z,defs"
  "LINKER:--exclude-libs,ALL")
