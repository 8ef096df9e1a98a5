# Builds the SDK's Rust libraries with cargo and stages them as they are installed.
# Run by the top-level CMakeLists.txt (at the first configure and at every build):
#
#   cmake -DCARGO=... -DCARGO_TARGET_DIR=... -DSOURCE_DIR=... -DSTAGE_DIR=...
#         -DSO_REAL=libmemflow_ffi.so.X.Y.Z -DSO_NAME=libmemflow_ffi.so.N
#         -DNATIVE_LIBS_FILE=... -DPLUGINS=a,b -DCLI=ON|OFF -DCLI_YARA=ON|OFF
#         -P memflow-cargo.cmake
#
# memflow-ffi is built with `cargo rustc ... -- --print native-static-libs`: rustc then
# reports the system libraries its static library needs (cargo replays the note when the
# crate is up to date), and they are written to NATIVE_LIBS_FILE for the targets and the .pc.
# Always the same command, so cargo's fingerprint stays stable and nothing is rebuilt twice.

cmake_minimum_required(VERSION 3.16)

foreach(var CARGO CARGO_TARGET_DIR SOURCE_DIR STAGE_DIR SO_REAL SO_NAME NATIVE_LIBS_FILE CLI)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "memflow-cargo.cmake: -D${var}=... is required")
  endif()
endforeach()

set(ENV{CARGO_TARGET_DIR} "${CARGO_TARGET_DIR}")
set(_manifest --manifest-path "${SOURCE_DIR}/Cargo.toml")
set(_echo "")
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.18)
  set(_echo ECHO_ERROR_VARIABLE) # show cargo's progress while capturing it
endif()

execute_process(
  COMMAND "${CARGO}" rustc --release -p memflow-ffi ${_manifest} -- --print native-static-libs
  WORKING_DIRECTORY "${SOURCE_DIR}"
  RESULT_VARIABLE _rc ERROR_VARIABLE _err ${_echo})
if(NOT _echo)
  message("${_err}")
endif()
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cargo rustc -p memflow-ffi failed")
endif()
if(NOT _err MATCHES "native-static-libs: ([^\r\n]*)")
  message(FATAL_ERROR "rustc did not report native-static-libs for memflow-ffi (is it still a staticlib?)")
endif()
string(STRIP "${CMAKE_MATCH_1}" _libs)
# Rewritten only on change: CMake re-configures when this file changes.
set(_old "")
if(EXISTS "${NATIVE_LIBS_FILE}")
  file(READ "${NATIVE_LIBS_FILE}" _old)
endif()
if(NOT _old STREQUAL "${_libs}\n")
  file(WRITE "${NATIVE_LIBS_FILE}" "${_libs}\n")
endif()

string(REPLACE "," ";" _plugins "${PLUGINS}")
set(_plugin_packages "")
foreach(_plugin IN LISTS _plugins)
  list(APPEND _plugin_packages -p "memflow-${_plugin}")
endforeach()
if(CLI)
  list(APPEND _plugin_packages -p memflow-cli)
  if(NOT CLI_YARA)
    # Only the tool has features; the plugins have none to lose.
    list(APPEND _plugin_packages --no-default-features)
  endif()
endif()
execute_process(
  COMMAND "${CARGO}" build --release ${_plugin_packages} ${_manifest}
  WORKING_DIRECTORY "${SOURCE_DIR}"
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cargo build of the shipped plugins (and the memflow tool) failed")
endif()

# ---- stage: copy only what changed (so nothing relinks needlessly), make the soname links --
set(_out "${CARGO_TARGET_DIR}/release")
file(MAKE_DIRECTORY "${STAGE_DIR}/lib/memflow")
function(stage from to)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${_out}/${from}" "${STAGE_DIR}/lib/${to}"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cannot stage ${_out}/${from}")
  endif()
endfunction()
function(link name target)
  set(path "${STAGE_DIR}/lib/${name}")
  if(IS_SYMLINK "${path}")
    file(READ_SYMLINK "${path}" old)
    if(old STREQUAL target)
      return()
    endif()
  endif()
  file(REMOVE "${path}")
  file(CREATE_LINK "${target}" "${path}" SYMBOLIC)
endfunction()

stage(libmemflow_ffi.so "${SO_REAL}")
link("${SO_NAME}" "${SO_REAL}")
link(libmemflow_ffi.so "${SO_NAME}")
stage(libmemflow_ffi.a libmemflow_ffi.a)
foreach(_plugin IN LISTS _plugins)
  stage(libmemflow_${_plugin}.so memflow/libmemflow_${_plugin}.so)
endforeach()

# The memflow tool, with its man page and shell completions generated from its own argument
# definitions (rewritten only when they change, so nothing re-installs needlessly).
if(CLI)
  file(MAKE_DIRECTORY "${STAGE_DIR}/bin" "${STAGE_DIR}/share/man/man1" "${STAGE_DIR}/share/completions")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${_out}/memflow" "${STAGE_DIR}/bin/memflow"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cannot stage ${_out}/memflow")
  endif()
  function(generate file)
    execute_process(COMMAND "${STAGE_DIR}/bin/memflow" ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "`memflow ${ARGN}` failed")
    endif()
    set(path "${STAGE_DIR}/share/${file}")
    set(old "")
    if(EXISTS "${path}")
      file(READ "${path}" old)
    endif()
    if(NOT old STREQUAL text)
      file(WRITE "${path}" "${text}")
    endif()
  endfunction()
  generate(man/man1/memflow.1 man)
  generate(completions/memflow.bash completions bash)
  generate(completions/_memflow completions zsh)
  generate(completions/memflow.fish completions fish)
endif()

# Programs record the soname; if the library lacks it they would record a build path.
find_program(_readelf readelf)
if(_readelf)
  execute_process(COMMAND "${_readelf}" -d "${STAGE_DIR}/lib/${SO_REAL}" OUTPUT_VARIABLE _dyn)
  if(NOT _dyn MATCHES "Library soname: \\[${SO_NAME}\\]")
    message(WARNING "libmemflow_ffi.so does not carry the soname ${SO_NAME}")
  endif()
endif()
