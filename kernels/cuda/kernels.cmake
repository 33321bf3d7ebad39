# kernels/cuda/kernels.cmake: included by kernels/CMakeLists.txt when CHASKI_CUDA is ON.
# One static library of CUDA kernels with a C launch API (cuda_ops.h).
add_library(chaski_kernels_cuda STATIC
  ${CMAKE_CURRENT_LIST_DIR}/status.cu
  ${CMAKE_CURRENT_LIST_DIR}/embed.cu
  ${CMAKE_CURRENT_LIST_DIR}/norm.cu
  ${CMAKE_CURRENT_LIST_DIR}/rope.cu
  ${CMAKE_CURRENT_LIST_DIR}/swiglu.cu
  ${CMAKE_CURRENT_LIST_DIR}/kv_write.cu
  ${CMAKE_CURRENT_LIST_DIR}/linear.cu
  ${CMAKE_CURRENT_LIST_DIR}/attention_decode.cu
  ${CMAKE_CURRENT_LIST_DIR}/attention_prefill.cu
  ${CMAKE_CURRENT_LIST_DIR}/sample.cu
  ${CMAKE_CURRENT_LIST_DIR}/ktrace.cu
)
target_include_directories(chaski_kernels_cuda PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(chaski_kernels_cuda PUBLIC CUDA::cudart CUDA::cublasLt)
set_target_properties(chaski_kernels_cuda PROPERTIES
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  POSITION_INDEPENDENT_CODE ON
  CUDA_SEPARABLE_COMPILATION OFF)
# -Xptxas -v: register/spill report in the build log (kept on: the hot kernels must not spill).
option(CHASKI_CUDA_PTXAS_VERBOSE "Print ptxas register/spill reports for the CUDA kernels" OFF)
target_compile_options(chaski_kernels_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${CHASKI_CUDA_PTXAS_VERBOSE}>>:-Xptxas=-v>)

# ---- quantized linears (issue 7: GPTQ / EXL2), owned by the quant work; quant_ops.h is the API ----
target_sources(chaski_kernels_cuda PRIVATE ${CMAKE_CURRENT_LIST_DIR}/quant_linear.cu)
