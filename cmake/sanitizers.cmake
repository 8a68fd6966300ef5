# ABLITERATE_SANITIZE=address,undefined instruments the addon. Node itself is not instrumented, so an
# ASan build must be run with the runtime preloaded, e.g.
#   LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 node --test ...
function(abliterate_configure_sanitizers target)
  if(ABLITERATE_SANITIZE STREQUAL "")
    return()
  endif()
  set(flags -fsanitize=${ABLITERATE_SANITIZE} -fno-omit-frame-pointer)
  if(ABLITERATE_SANITIZE MATCHES "undefined")
    # A UB report must fail the test run, not scroll by.
    list(APPEND flags -fno-sanitize-recover=undefined)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${flags}>)
  target_link_options(${target} PRIVATE -fsanitize=${ABLITERATE_SANITIZE})
  message(STATUS "abliterate: sanitizers ${ABLITERATE_SANITIZE}")
endfunction()
