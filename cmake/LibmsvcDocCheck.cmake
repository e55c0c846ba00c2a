# Checks the Markdown documentation as a reader on a forge sees it:
#   cmake -DLIBMSVC_DOC_ROOT=<source dir> -P LibmsvcDocCheck.cmake
# - every relative link in README.md, CHANGELOG.md and docs/*.md names a
#   file that exists;
# - no Doxygen-only reference token (@ref, \ref) is left in those files:
#   they would show raw; a relative link works for both readers;
# - no file of the source tree cites a planning document that is not part of
#   it (the name is assembled here so that this file does not match itself).
if(NOT LIBMSVC_DOC_ROOT)
  message(FATAL_ERROR "usage: cmake -DLIBMSVC_DOC_ROOT=<dir> -P LibmsvcDocCheck.cmake")
endif()
set(root "${LIBMSVC_DOC_ROOT}")
set(errors "")

file(GLOB docs "${root}/docs/*.md")
list(APPEND docs "${root}/README.md" "${root}/CHANGELOG.md")
foreach(md IN LISTS docs)
  file(RELATIVE_PATH rel "${root}" "${md}")
  get_filename_component(dir "${md}" DIRECTORY)
  file(READ "${md}" text)
  # Code blocks may show anything; drop them before looking at links.
  string(REGEX REPLACE "```[^`]*```" "" text "${text}")
  string(REGEX MATCHALL "\\]\\([^)# ]+(#[^) ]*)?\\)" links "${text}")
  foreach(link IN LISTS links)
    string(REGEX REPLACE "^\\]\\(([^)# ]+).*" "\\1" target "${link}")
    if(target MATCHES "^[a-z]+:")
      continue() # https:, mailto:
    endif()
    if(NOT EXISTS "${dir}/${target}")
      string(APPEND errors "  ${rel}: link to ${target}, which does not exist\n")
    endif()
  endforeach()
  string(REGEX MATCHALL "[@\\\\]ref [A-Za-z_0-9]+" refs "${text}")
  foreach(r IN LISTS refs)
    string(APPEND errors "  ${rel}: '${r}' shows raw on a forge; use a relative link\n")
  endforeach()
endforeach()

set(planning "CONTR")
string(APPEND planning "ACTS")
file(GLOB_RECURSE tree
  "${root}/README.md" "${root}/CHANGELOG.md" "${root}/docs/*" "${root}/include/*"
  "${root}/src/*" "${root}/examples/*" "${root}/tests/*" "${root}/bench/*"
  "${root}/tools/*" "${root}/fuzz/*.c" "${root}/cmake/*" "${root}/scripts/*")
foreach(f IN LISTS tree)
  if(f MATCHES "/node_modules/|/corpus/|\\.(pem|der|db|png)$")
    continue()
  endif()
  file(STRINGS "${f}" hits REGEX "${planning}")
  if(hits)
    file(RELATIVE_PATH rel "${root}" "${f}")
    string(APPEND errors "  ${rel}: cites ${planning}, which is not part of the source tree\n")
  endif()
endforeach()

if(errors)
  message(FATAL_ERROR "documentation check failed:\n${errors}")
endif()
message(STATUS "documentation links and references are fine")
