-- samplers/llama_cpp.lua: llama.cpp's default chain order
--   logit bias -> penalties -> DRY -> top-k -> typical -> top-p -> min-p -> XTC
--   -> temperature (dynamic when dynatemp_range > 0) -> draw
-- with the job's parameter values. The final pick is the job's (greedy at
-- temperature 0, mirostat when enabled, else the seeded draw).
return {
  sample = function(ctx)
    ctx:bias()
    ctx:penalties()
    ctx:dry()
    ctx:top_k()
    ctx:typical()
    ctx:top_p()
    ctx:min_p()
    ctx:xtc()
    ctx:stage("temperature")
    return ctx:pick()
  end,
}
