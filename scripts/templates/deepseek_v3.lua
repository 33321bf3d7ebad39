-- templates/deepseek_v3.lua: DeepSeek V3 (chat). BOS, then every system message's
-- content joined by "\n\n" (no markers), then per message:
--   user:      <｜User｜>CONTENT
--   assistant: <｜Assistant｜>CONTENT<｜end▁of▁sentence｜>
--              (after tool results: <｜tool▁outputs▁end｜>CONTENT<｜end▁of▁sentence｜>)
--   tool:      <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>CONTENT<｜tool▁output▁end｜>
--              (later ones: \n<｜tool▁output▁begin｜>CONTENT<｜tool▁output▁end｜>)
-- An assistant message without content renders its tool_calls (an array of
-- {type =, ["function"] = {name =, arguments =}}) as the reference template does.
-- Contents are not trimmed. The generation prompt is <｜Assistant｜>, left out
-- right after tool results (which close with <｜tool▁outputs▁end｜>).

local EOS = "<｜end▁of▁sentence｜>"

local function tool_call(t)
  return "<｜tool▁call▁begin｜>" .. t.type .. "<｜tool▁sep｜>" .. t["function"].name ..
         "\n```json\n" .. t["function"].arguments .. "\n```<｜tool▁call▁end｜>"
end

return {
  render = function(messages, opts)
    local out = {}
    local function emit(s) out[#out + 1] = s end
    local system, first_sp = "", true
    for _, m in ipairs(messages) do
      if m.role == "system" then
        system = first_sp and (system .. m.content) or (system .. "\n\n" .. m.content)
        first_sp = false
      end
    end
    emit(opts.bos_token or "")
    emit(system)
    local is_first, is_tool, output_first = false, false, true
    for _, m in ipairs(messages) do
      if m.role == "user" then
        is_tool = false
        emit("<｜User｜>" .. m.content)
      elseif m.role == "assistant" and m.content == nil then
        is_tool = false
        for _, t in ipairs(m.tool_calls or {}) do
          if not is_first then
            emit("<｜Assistant｜><｜tool▁calls▁begin｜>" .. tool_call(t))
            is_first = true
          else
            emit("\n" .. tool_call(t) .. "<｜tool▁calls▁end｜>" .. EOS)
          end
        end
      elseif m.role == "assistant" then
        if is_tool then
          emit("<｜tool▁outputs▁end｜>" .. m.content .. EOS)
          is_tool = false
        else
          emit("<｜Assistant｜>" .. m.content .. EOS)
        end
      elseif m.role == "tool" then
        is_tool = true
        if output_first then
          emit("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" .. m.content .. "<｜tool▁output▁end｜>")
          output_first = false
        else
          emit("\n<｜tool▁output▁begin｜>" .. m.content .. "<｜tool▁output▁end｜>")
        end
      end
    end
    if is_tool then emit("<｜tool▁outputs▁end｜>") end
    if opts.add_generation_prompt and not is_tool then emit("<｜Assistant｜>") end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<｜User｜>", 1, true) ~= nil and t:find("<｜Assistant｜>", 1, true) ~= nil
       and t:find("</think>", 1, true) == nil   -- the R1 templates strip reasoning
  end,
}
