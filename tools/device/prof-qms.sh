B=build-iter
M='dram__bytes_read.sum,lts__t_sectors.sum,lts__t_requests.sum,sm__cycles_elapsed.avg,smsp__inst_executed.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ldgsts.sum,smsp__issue_active.avg.per_cycle_active'
timeout 60 ncu -k regex:qms -s 3 -c 1 --metrics "$M" $B/tests/kernels/check_quant --bench-only --only gate_up > $OUT/ncu_qms.txt 2>&1
CHASKI_QMV=3 timeout 60 ncu -k regex:qmv_kernel -s 3 -c 1 --metrics "$M" $B/tests/kernels/check_quant --bench-only --only gate_up > $OUT/ncu_qmv.txt 2>&1
