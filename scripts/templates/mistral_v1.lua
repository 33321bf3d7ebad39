-- templates/mistral_v1.lua: Mistral Instruct v0.1 / v0.2 ("v1" tokenizer):
-- BOS, then "[INST] user [/INST]" and "assistant EOS" turns, strictly alternating;
-- no system role.
return {
  render = function(messages, opts)
    local out = {opts.bos_token or ""}
    for i, m in ipairs(messages) do
      if (m.role == "user") ~= ((i - 1) % 2 == 0) then
        error("Conversation roles must alternate user/assistant/user/assistant/...", 0)
      end
      if m.role == "user" then
        out[#out + 1] = "[INST] " .. m.content .. " [/INST]"
      elseif m.role == "assistant" then
        out[#out + 1] = m.content .. (opts.eos_token or "")
      else
        error("Only user and assistant roles are supported!", 0)
      end
    end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("[INST]", 1, true) ~= nil and t:find("<<SYS>>", 1, true) == nil
       and t:find("' [/INST]'", 1, true) ~= nil
  end,
}
