-- templates/mistral_v3.lua: Mistral Instruct v0.3 ("v3" tokenizer): BOS, then
-- "[INST] user[/INST]" and " assistant EOS" turns; a leading system message is put
-- before the LAST user message ("[INST] system\n\nuser[/INST]").
return {
  render = function(messages, opts)
    local first, system = 1, nil
    if #messages > 0 and messages[1].role == "system" then
      first, system = 2, messages[1].content
    end
    local out = {opts.bos_token or ""}
    for i = first, #messages do
      local m, k = messages[i], i - first
      if (m.role == "user") ~= (k % 2 == 0) then
        error("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...", 0)
      end
      if m.role == "user" then
        if i == #messages and system then
          out[#out + 1] = "[INST] " .. system .. "\n\n" .. m.content .. "[/INST]"
        else
          out[#out + 1] = "[INST] " .. m.content .. "[/INST]"
        end
      elseif m.role == "assistant" then
        out[#out + 1] = " " .. m.content .. (opts.eos_token or "")
      else
        error("Only user and assistant roles are supported, with the exception of an initial optional system message!", 0)
      end
    end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("[INST]", 1, true) ~= nil and t:find("'[/INST]'", 1, true) ~= nil
       and t:find("system_message", 1, true) ~= nil
  end,
}
