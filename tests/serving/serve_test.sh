#!/usr/bin/env bash
# vkllm serve end to end on stories260K (CTest serve_api): a server on a free port, the OpenAI endpoints, greedy
# text equal to `vkllm run --temp 0`, two concurrent streams, errors (400, 401, 404, 413), a client that hangs up
# mid-stream (its request cancelled, every KV page back), and SIGTERM ending with exit code 0.
set -euo pipefail
vkllm=$1 model=$2
work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [[ -f $work/server.log ]] && sed 's/^/  server: /' "$work/server.log"; exit 1; }

"$vkllm" serve -m "$model" --port 0 --parallel 4 --ctx 2048 --api-key secret --template llama2 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q 'http://' "$work/server.log" && break; sleep 0.1; done
port=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/server.log" | sed 's/.*://') || fail "the server did not start"
url=http://127.0.0.1:$port
auth=(-H "Authorization: Bearer secret")
echo "server on port $port"

# Greedy text of `vkllm run` without the prompt it echoes.
expected() { "$vkllm" run -m "$model" -p "$1" -n "$2" --temp 0 2>/dev/null | head -c -1 | tail -c +$((${#1} + 1)); }
# The "text" fields of a response or an event stream, joined (the stories have no escaped characters).
texts() { sed -n 's/.*"text":"\([^"]*\)".*/\1/p' | tr -d '\n'; }

[[ $(curl -sf "$url/health") == '{"status":"ok"}' ]] || fail "/health"
curl -sf "${auth[@]}" "$url/v1/models" | grep -q '"object":"list".*"id":"stories260K.gguf"' || fail "/v1/models"

want=$(expected "Once upon a time" 32)
got=$(curl -sf "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":32,"temperature":0}')
echo "$got" | grep -q '"object":"text_completion"' || fail "completion shape: $got"
echo "$got" | grep -q '"finish_reason":"length".*"usage":{"prompt_tokens":5,"completion_tokens":32,"total_tokens":37' ||
    fail "finish_reason/usage: $got"
[[ $(echo "$got" | texts) == "$want" ]] || fail "completion text '$(echo "$got" | texts)' != vkllm run '$want'"

# Two streams at once: each equals its text alone; each ends with a finish_reason and [DONE].
want2=$(expected "The cat" 40)
curl -sfN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":32,"temperature":0,"stream":true}' >"$work/s1" &
p1=$!
curl -sfN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"The cat","max_tokens":40,"temperature":0,"stream":true}' >"$work/s2" &
p2=$!
wait $p1 $p2 || fail "stream requests"
[[ $(texts <"$work/s1") == "$want" ]] || fail "stream 1 '$(texts <"$work/s1")' != '$want'"
[[ $(texts <"$work/s2") == "$want2" ]] || fail "stream 2 '$(texts <"$work/s2")' != '$want2'"
for s in s1 s2; do
    [[ $(tail -n 2 "$work/$s" | head -n 1) == "data: [DONE]" ]] || fail "$s does not end with [DONE]"
    grep -q '"finish_reason":"length"' "$work/$s" || fail "$s has no finish_reason"
done

chat=$(curl -sf "${auth[@]}" "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0}')
echo "$chat" | grep -q '"object":"chat.completion".*"message":{"role":"assistant","content":"' || fail "chat: $chat"
# "[INST] Hi [/INST]" (the llama2 template) is 18 tokens of stories260K with BOS.
echo "$chat" | grep -q '"usage":{"prompt_tokens":18,' || fail "chat usage: $chat"
curl -sfN "${auth[@]}" "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":true}' >"$work/chat"
grep -q '"object":"chat.completion.chunk".*"delta":{"role":"assistant"' "$work/chat" || fail "chat stream: $(cat "$work/chat")"

# Log-probabilities: one per token, the greedy token is its own top alternative; chat's content list too.
lp=$(curl -sf "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":3,"temperature":0,"logprobs":2}')
echo "$lp" | grep -q '"logprobs":{"tokens":\[","," there"," was"\],"token_logprobs":\[-[0-9.e-]*,-[0-9.e-]*,-[0-9.e-]*\],"top_logprobs":\[{",":-[0-9.e-]*,"[^"]*":-' ||
    fail "completion logprobs: $lp"
echo "$lp" | grep -q '"text_offset":\[0,1,7\]' || fail "text_offset: $lp"
lp=$(curl -sf "${auth[@]}" "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"logprobs":true,"top_logprobs":1}')
echo "$lp" | grep -q '"logprobs":{"content":\[{"token":"[^"]*","logprob":-[0-9.e-]*,"bytes":\[[0-9,]*\],"top_logprobs":\[{"token"' ||
    fail "chat logprobs: $lp"
# Streamed with log-probabilities: one event per token, each with its own text and entry, however the server's
# steps fall (a second stream beside it makes the engine run ahead of the client more often).
curl -sfN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"The cat","max_tokens":40,"temperature":0,"stream":true}' >/dev/null &
p3=$!
curl -sfN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":32,"temperature":0,"logprobs":0,"stream":true}' >"$work/lp"
wait $p3 || fail "stream beside the logprobs stream"
[[ $(grep -o '"token_logprobs":\[-[0-9.e-]*\]' "$work/lp" | wc -l) == 32 ]] || fail "stream logprobs: $(cat "$work/lp")"
[[ $(grep '"finish_reason":null' "$work/lp" | grep -c '"token_logprobs":\[\]\|"token_logprobs":\[-[0-9.e-]*,') == 0 ]] ||
    fail "stream logprobs: a token's event without its entry or with several: $(cat "$work/lp")"
[[ $(texts <"$work/lp") == "$want" ]] || fail "stream logprobs text '$(texts <"$work/lp")' != '$want'"

status() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
[[ $(status "${auth[@]}" "$url/v1/completions" -d '{"prompt":"a","logprobs":21}') == 400 ]] || fail "logprobs 21: not 400"
[[ $(status "${auth[@]}" "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"a"}],"top_logprobs":2}') == 400 ]] ||
    fail "top_logprobs without logprobs: not 400"
[[ $(status "$url/v1/models") == 401 ]] || fail "no API key: not 401"
[[ $(status "${auth[@]}" "$url/v1/completions" -d '{bad') == 400 ]] || fail "malformed JSON: not 400"
grep -q '"error":{"message":"the body is not valid JSON' "$work/body" || fail "error shape: $(cat "$work/body")"
[[ $(status "${auth[@]}" "$url/v1/completions" -d '{"prompt":"x","max_tokens":"many"}') == 400 ]] || fail "wrong type: not 400"
long=$(printf 'the cat sat on the mat %.0s' $(seq 400))
[[ $(status "${auth[@]}" "$url/v1/completions" -d "{\"prompt\":\"$long\"}") == 400 ]] || fail "overlong prompt: not 400"
grep -q 'context holds 2048' "$work/body" || fail "overlong prompt message: $(cat "$work/body")"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$work/big"
[[ $(status "${auth[@]}" "$url/v1/completions" --data-binary @"$work/big") == 413 ]] || fail "big body: not 413"
[[ $(status "${auth[@]}" "$url/v1/nothing") == 404 ]] || fail "unknown route: not 404"

# Clients that hang up mid-stream (head stops reading after two events): their requests are cancelled and
# every page returns.  Greedy stories260K runs 2,000 tokens without an end of text, a second or more of work
# (with two or three beside it), far longer than a client takes to hang up: with 240 tokens a loaded machine
# sometimes finished them before curl noticed the hang-up.
pids=()
for i in 1 2 3; do
    { curl -sN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"stream":true}' |
        head -c 300 >/dev/null; } 2>/dev/null &
    pids+=($!)
done
wait "${pids[@]}" || true
for _ in $(seq 50); do
    metrics=$(curl -sf "$url/metrics")
    grep -q '^vkllm_requests_running 0' <<<"$metrics" && grep -q '^vkllm_kv_pages_used 0' <<<"$metrics" && break
    sleep 0.1
done
grep -q '^vkllm_kv_pages_used 0' <<<"$metrics" || fail "KV pages still used after every request ended: $metrics"
grep '^vkllm_requests_cancelled_total\|^vkllm_generated_tokens_total\|^vkllm_kv_pages_cached' <<<"$metrics"
grep -q '^vkllm_requests_cancelled_total [1-9]' <<<"$metrics" || fail "no request was cancelled by its client hanging up"
grep -q '^vkllm_inter_token_latency_seconds_count [1-9]' <<<"$metrics" || fail "no inter-token latency in /metrics"
grep -q '^vkllm_replicas [1-9]' <<<"$metrics" || fail "no replica count in /metrics"
grep -q '^vkllm_time_to_first_token_seconds_bucket{le="+Inf"} [1-9]' <<<"$metrics" || fail "no time-to-first-token histogram in /metrics"

# Routing among replicas (two on a 2-core machine by default, docs/serving.md): a request sharing a long prefix with
# an earlier one goes to the replica that served it while that one holds at most one request more than another, so
# its prefix comes from the cache although the other replica is idle.  (With one replica this holds trivially.)
metric() { curl -sf "$url/metrics" | sed -n "s/^$1 //p"; }
prefix=$(printf 'The little dog ran to the big red barn and back again. %.0s' $(seq 6))
curl -sf "${auth[@]}" "$url/v1/completions" -d "{\"prompt\":\"$prefix First\",\"max_tokens\":1}" >/dev/null || fail "prefix request"
for _ in $(seq 50); do [[ $(metric vkllm_requests_running) == 0 ]] && break; sleep 0.05; done
# Both replicas idle: the long request goes to the first, the one that served the prefix.
curl -sN "${auth[@]}" "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"stream":true}' \
    >/dev/null 2>&1 &
busy=$!
for _ in $(seq 50); do [[ $(metric vkllm_requests_running) == 1 ]] && break; sleep 0.05; done
hits=$(metric vkllm_prefix_cache_hit_tokens_total)
curl -sf "${auth[@]}" "$url/v1/completions" -d "{\"prompt\":\"$prefix Second\",\"max_tokens\":1}" >/dev/null || fail "prefix request 2"
hits2=$(metric vkllm_prefix_cache_hit_tokens_total)
echo "prefix-cache hits $hits -> $hits2 beside a running request ($(metric vkllm_replicas) replicas)"
[[ $(metric vkllm_requests_running) == 1 ]] || fail "the long request ended before the check"
((hits2 - hits >= 48)) || fail "a request sharing a 330-character prefix took $((hits2 - hits)) tokens from the cache"
kill $busy 2>/dev/null; wait $busy 2>/dev/null || true

kill -TERM "$server_pid"
wait "$server_pid" || fail "exit code $? after SIGTERM"
server_pid=
echo "serve_api: all checks passed"
