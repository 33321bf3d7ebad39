-- templates/chatml.lua: plain ChatML (Qwen2 / Qwen2.5 style, many fine-tunes):
-- <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, then <|im_start|>assistant\n
-- when add_generation_prompt. opts.default_system (if given) is used when the
-- conversation has no system message (Qwen2.5 puts its own there).
return {
  render = function(messages, opts)
    local out = {}
    if opts.default_system and (#messages == 0 or messages[1].role ~= "system") then
      out[#out + 1] = "<|im_start|>system\n" .. opts.default_system .. "<|im_end|>\n"
    end
    for _, m in ipairs(messages) do
      out[#out + 1] = "<|im_start|>" .. m.role .. "\n" .. m.content .. "<|im_end|>\n"
    end
    if opts.add_generation_prompt then out[#out + 1] = "<|im_start|>assistant\n" end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<|im_start|>", 1, true) ~= nil and t:find("</think>", 1, true) == nil
  end,
}
