"""The real `openai` client against a running `mix qwen3.server`: each scenario's
observations as one JSON object on stdout, for test/qwen3/http_openai_test.exs to check.

    python openai_client.py BASE_URL API_KEY CHAT_MODEL_ID STEERED_BASE_URL
"""

import json
import sys
import threading
import urllib.error
import urllib.request

import openai

BASE, KEY, MODEL, STEERED = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=60)
USER = [{"role": "user", "content": "Hello there"}]
out = {}


def chat(**kw):
    return client.chat.completions.create(model=MODEL, messages=kw.pop("messages", USER), **kw)


def status_of(fn):
    try:
        fn()
        return 200
    except openai.APIStatusError as e:
        return {"status": e.status_code, "type": e.body.get("type") if isinstance(e.body, dict) else None}


# Greedy, whole and streamed.
r = chat(max_tokens=8, temperature=0)
out["chat"] = {
    "content": r.choices[0].message.content,
    "finish_reason": r.choices[0].finish_reason,
    "usage": r.usage.model_dump(),
    "object": r.object,
    "model": r.model,
}
chunks = list(chat(max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True}))
out["chat_stream"] = {
    "content": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
    "finish_reason": [c.choices[0].finish_reason for c in chunks if c.choices][-1],
    "usage": chunks[-1].usage.model_dump() if chunks[-1].usage else None,
    "roles": [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role],
}

# Text completions from text and from token ids.
r = client.completions.create(model=MODEL, prompt="The sea", max_tokens=6, temperature=0, logprobs=2)
out["completion"] = {
    "text": r.choices[0].text,
    "tokens": r.choices[0].logprobs.tokens,
    "top": [len(t) for t in r.choices[0].logprobs.top_logprobs],
    "usage": r.usage.model_dump(),
}
r = client.completions.create(model=MODEL, prompt=[1, 2, 3], max_tokens=5, temperature=0)
out["completion_ids"] = {"text": r.choices[0].text, "usage": r.usage.model_dump()}
streamed = client.completions.create(model=MODEL, prompt="The sea", max_tokens=6, temperature=0, stream=True)
out["completion_stream"] = "".join(c.choices[0].text for c in streamed)

# Seeds, stop strings, log-probabilities.
sampled = [chat(max_tokens=12, temperature=1.0, seed=s).choices[0].message.content for s in (5, 5, 6)]
out["seeds"] = sampled
full = out["chat"]["content"]
stop = full[len(full) // 2 :][:2]
r = chat(max_tokens=8, temperature=0, stop=[stop])
out["stop"] = {"stop": stop, "content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}
r = chat(max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
lp = r.choices[0].logprobs.content
out["logprobs"] = {
    "n": len(lp),
    "tokens": "".join(e.token for e in lp),
    "content": r.choices[0].message.content,
    "top": [[t.token for t in e.top_logprobs] for e in lp],
    "first_is_top": all(e.token == e.top_logprobs[0].token for e in lp),
    "values": [e.logprob for e in lp],
}

# Structured output: a JSON Schema, and any JSON object (thinking off, so that the
# constraint starts at once).
no_think = {"chat_template_kwargs": {"enable_thinking": False}}
schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["n"], "additionalProperties": False}
fmt = {"type": "json_schema", "json_schema": {"name": "count", "schema": schema}}
r = chat(max_tokens=40, temperature=0.8, seed=3, response_format=fmt, extra_body=no_think)
out["json_schema"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}
r = chat(max_tokens=60, temperature=0, response_format={"type": "json_object"}, extra_body=no_think)
out["json_object"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}
out["bad_schema"] = status_of(lambda: chat(max_tokens=4, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}))

# Tool calls and the think block, from the steered model, whole and streamed.
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
steered = openai.OpenAI(base_url=STEERED, api_key=KEY, max_retries=0, timeout=60)
r = steered.chat.completions.create(model="tiny-steered", messages=USER, tools=tools, temperature=0, max_tokens=40)
m = r.choices[0].message
out["tools"] = {
    "finish_reason": r.choices[0].finish_reason,
    "content": m.content,
    "reasoning": getattr(m, "reasoning_content", None) or (m.model_extra or {}).get("reasoning_content"),
    "calls": [{"name": c.function.name, "arguments": json.loads(c.function.arguments), "id": c.id} for c in m.tool_calls or []],
}
deltas = list(steered.chat.completions.create(model="tiny-steered", messages=USER, tools=tools, temperature=0, max_tokens=40, stream=True))
out["tools_stream"] = {
    "reasoning": "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in deltas if c.choices),
    "calls": [
        {"name": t.function.name, "arguments": json.loads(t.function.arguments)}
        for c in deltas
        if c.choices and c.choices[0].delta.tool_calls
        for t in c.choices[0].delta.tool_calls
    ],
    "finish_reason": [c.choices[0].finish_reason for c in deltas if c.choices][-1],
}
# The call's reply goes back as a tool message, and the conversation continues.
history = USER + [m.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": "sunny"}]
r = steered.chat.completions.create(model="tiny-steered", messages=history, tools=tools, temperature=0, max_tokens=40)
out["tools_continued"] = r.choices[0].finish_reason

# Errors, each with its status and OpenAI's error object; raw requests through urllib.
ROOT = BASE.removesuffix("/v1")
auth = {"Authorization": f"Bearer {KEY}"}


def raw(method, path, body=None):
    request = urllib.request.Request(ROOT + path, data=body, method=method, headers=auth)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


errors = {
    "bad_json": raw("POST", "/v1/chat/completions", b"{not json")[0],
    "wrong_type": status_of(lambda: chat(max_tokens="many")),
    "unknown_field": status_of(lambda: chat(max_tokens=2, extra_body={"colour": "red"})),
    "unknown_model": status_of(lambda: client.chat.completions.create(model="gpt-9", messages=USER)),
    "no_key": status_of(lambda: openai.OpenAI(base_url=BASE, api_key="wrong", max_retries=0).models.list()),
    "route": raw("GET", "/v1/nothing")[0],
    "method": raw("GET", "/v1/chat/completions")[0],
    "too_large": raw("POST", "/v1/chat/completions", b"x" * (5 * 1024 * 1024))[0],
}
body = json.loads(raw("POST", "/v1/chat/completions", b"[1]")[1])
errors["shape"] = sorted(body["error"].keys())
out["errors"] = errors
out["models"] = [m.id for m in client.models.list().data]

# Overload: more concurrent requests than the serving holds (batch 1, no queue).
statuses = []


def long_request():
    statuses.append(status_of(lambda: chat(max_tokens=200, temperature=0)))


threads = [threading.Thread(target=long_request) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out["overload"] = statuses

print(json.dumps(out))
