# ROS 2 interface packages installed from PyPI wheels export their *_rosidl_generator_py targets with
# the Python and NumPy include directories of the machine that built the wheels
# (/opt/python/cp311-cp311/...). CMake refuses imported targets that name a directory that does not
# exist, so the build of our own .srv fails. At the end of configure, replace such missing
# directories with this interpreter's. On a regular ROS install every path exists: nothing changes.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)

function(radseg_fix_foreign_python_includes)
  get_property(_targets DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed)
    set(_changed FALSE)
    foreach(_dir IN LISTS _dirs)
      if(NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}"
         AND _dir MATCHES "(/include/python3\\.[0-9]+|/numpy/_?core/include)$")
        list(APPEND _fixed ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
        set(_changed TRUE)
      else()
        list(APPEND _fixed "${_dir}")
      endif()
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" CALL radseg_fix_foreign_python_includes)
