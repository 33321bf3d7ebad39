-- templates/qwen3.lua: Qwen3 (ChatML with <think> reasoning blocks).
-- ChatML turns: <|im_start|>ROLE\nCONTENT<|im_end|>\n. An assistant turn after the
-- last real user query shows its reasoning as <think>\n...\n</think>\n\n; earlier
-- assistant turns lose theirs. opts.enable_thinking == false adds an empty think
-- block after the generation prompt. (Tool calls are not rendered here.)

local function starts(s, p) return s:sub(1, #p) == p end
local function ends(s, p) return #p == 0 or s:sub(-#p) == p end
local function lstrip_nl(s) return (s:gsub("^\n+", "")) end
local function rstrip_nl(s) return (s:gsub("\n+$", "")) end

-- Python's s.split(sep)[1] and s.split(sep)[-1]
local function before_first(s, sep)
  local i = s:find(sep, 1, true)
  return i and s:sub(1, i - 1) or s
end
local function after_last(s, sep)
  local pos, from = nil, 1
  while true do
    local i = s:find(sep, from, true)
    if not i then break end
    pos, from = i, i + 1
  end
  return pos and s:sub(pos + #sep) or s
end

return {
  render = function(messages, opts)
    local out = {}
    local function emit(s) out[#out + 1] = s end
    if #messages > 0 and messages[1].role == "system" then
      emit("<|im_start|>system\n" .. messages[1].content .. "<|im_end|>\n")
    end
    local multi_step_tool, last_query = true, #messages   -- 1-based index
    for i = #messages, 1, -1 do
      local m = messages[i]
      if multi_step_tool and m.role == "user" and
         not (starts(m.content, "<tool_response>") and ends(m.content, "</tool_response>")) then
        multi_step_tool, last_query = false, i
      end
    end
    for i, m in ipairs(messages) do
      if m.role == "user" or (m.role == "system" and i ~= 1) then
        emit("<|im_start|>" .. m.role .. "\n" .. m.content .. "<|im_end|>\n")
      elseif m.role == "assistant" then
        local content, reasoning = m.content, ""
        if m.reasoning_content ~= nil then
          reasoning = m.reasoning_content
        elseif content:find("</think>", 1, true) then
          reasoning = lstrip_nl(after_last(rstrip_nl(before_first(content, "</think>")), "<think>"))
          content = lstrip_nl(after_last(content, "</think>"))
        end
        if i > last_query and (i == #messages or reasoning ~= "") then
          emit("<|im_start|>assistant\n<think>\n" .. rstrip_nl(lstrip_nl(reasoning)) ..
               "\n</think>\n\n" .. lstrip_nl(content))
        else
          emit("<|im_start|>assistant\n" .. content)
        end
        emit("<|im_end|>\n")
      elseif m.role == "tool" then
        if i == 1 or messages[i - 1].role ~= "tool" then emit("<|im_start|>user") end
        emit("\n<tool_response>\n" .. m.content .. "\n</tool_response>")
        if i == #messages or messages[i + 1].role ~= "tool" then emit("<|im_end|>\n") end
      end
    end
    if opts.add_generation_prompt then
      emit("<|im_start|>assistant\n")
      if opts.enable_thinking == false then emit("<think>\n\n</think>\n\n") end
    end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<|im_start|>", 1, true) ~= nil and t:find("</think>", 1, true) ~= nil
  end,
}
