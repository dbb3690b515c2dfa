"""Split a chat model's raw output into reasoning, content and tool calls.

Pure text processing (no I/O, no model code). Choose the output family from the
model's chat template (:func:`detect_family`), then run a :class:`StreamParser`
over the generated text, delta by delta, or :func:`parse_output` over all of it::

    family = detect_family(template_source, override=configured_family)
    parser = StreamParser(
        family,
        reasoning_started=prompt_opens_reasoning(rendered_prompt, family),
        known_tools={tool.name for tool in request.tools},
    )
    for delta in deltas:
        for event in parser.feed(delta): ...
    for event in parser.finish(): ...  # the last one is Final(message)

The rules every family shares:

- Reasoning is split first: an opening tag counts only at the very start of the
  output (or the prompt opened it: ``reasoning_started``); a stray closing tag
  there is dropped; inside reasoning only the closing tag matters, so tool markup
  there stays reasoning. A block that never closes is reasoning
  (``reasoning_unclosed``), except that if it ends in valid calls after a tool
  marker, those are calls (``tool_call_in_unclosed_reasoning``): models such as
  Qwen3.5 often call without closing ``</think>``.
- Calls are read from the rest. A call is emitted whole, once it is complete and
  valid; one that cannot be read comes back verbatim as content with
  ``malformed_tool_call``: nothing is lost, nothing half-parsed leaks.
- Arguments are always a JSON object, serialized once by ``json.dumps``.
- Content and reasoning are trimmed of leading and trailing whitespace; the deltas
  add up to the final message exactly, whatever the chunking.

The other way round, :func:`tool_call_gbnf` (llama.cpp) and :func:`tool_call_lark`
(llguidance) are grammars that make a model write calls this parser reads, with
arguments that :func:`schema_errors` finds no fault with.
"""

from appliance.parsing.constraints import (
    special_token_ids,
    tool_call_gbnf,
    tool_call_lark,
    tool_call_trigger,
)
from appliance.parsing.families import (
    Family,
    detect_family,
    family_from_name,
    prompt_opens_reasoning,
)
from appliance.parsing.stream import StreamParser, new_call_id, parse_output
from appliance.parsing.types import (
    ContentDelta,
    Event,
    Final,
    ParsedMessage,
    ReasoningDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallStart,
)
from appliance.parsing.validate import schema_errors

__all__ = [
    "ContentDelta",
    "Event",
    "Family",
    "Final",
    "ParsedMessage",
    "ReasoningDelta",
    "StreamParser",
    "ToolCall",
    "ToolCallArgumentsDelta",
    "ToolCallStart",
    "detect_family",
    "family_from_name",
    "new_call_id",
    "parse_output",
    "prompt_opens_reasoning",
    "schema_errors",
    "special_token_ids",
    "tool_call_gbnf",
    "tool_call_lark",
    "tool_call_trigger",
]
