#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for N seconds (first argument, default 15).
#   fuzz/run.sh [seconds] [target ...]
# (targets default to gguf_fuzz safetensors_fuzz llama2c_fuzz hf_config_fuzz tokenizer_json_fuzz
#  chat_template_fuzz template_depth_fuzz openai_request_fuzz http_request_fuzz json_schema_fuzz
#  grammar_fuzz shop_text_fuzz image_fuzz)
# Seeds: small valid files generated here (python3) plus the GGUF / safetensors assets when
# present; the growing corpus lives in fuzz-corpus/<target>/ (git-ignored). Exits non-zero when a
# target crashes, trips a sanitizer, hangs (-timeout) or exceeds the memory limit; the input that
# did it is saved as build-fuzz/artifacts/<target>-crash-*.
# Skips (exit 0) when clang is not installed.
set -euo pipefail

secs=${1:-15}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(gguf_fuzz safetensors_fuzz llama2c_fuzz hf_config_fuzz tokenizer_json_fuzz
                               chat_template_fuzz template_depth_fuzz openai_request_fuzz http_request_fuzz
                               json_schema_fuzz grammar_fuzz shop_text_fuzz image_fuzz)

root=$(cd "$(dirname "$0")/.." && pwd)
build=${LLMFORGE_FUZZ_BUILD:-$root/build-fuzz}
jobs=${LLMFORGE_FUZZ_JOBS:-2}

if ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz/run.sh: clang++ not found, skipping (hint: apt-get install clang libclang-rt-14-dev)" >&2
    exit 0
fi

# LLMFORGE_FUZZ=ON compiles the libraries under test with -fsanitize=fuzzer-no-link (coverage) too.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLLMFORGE_FUZZ=ON >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]}"

seeds=$build/seeds
rm -rf "$seeds"
mkdir -p "$seeds/gguf_fuzz" "$seeds/safetensors_fuzz" "$seeds/llama2c_fuzz" "$seeds/hf_config_fuzz" \
    "$seeds/tokenizer_json_fuzz" "$seeds/chat_template_fuzz" "$seeds/template_depth_fuzz" \
    "$seeds/openai_request_fuzz" "$seeds/http_request_fuzz" "$seeds/json_schema_fuzz" "$seeds/grammar_fuzz" \
    "$seeds/shop_text_fuzz" "$seeds/image_fuzz" \
    "$build/artifacts"
# GBNF seeds: each small grammar of grammars/ with a JSON-ish text after a NUL byte.
for g in "$root"/grammars/*.gbnf; do
    if (($(stat -c %s "$g") <= 8192)); then
        { cat "$g"; printf '\0{"a": [1, -2.5e3, "x\\u00e9"], "b": null}'; } > "$seeds/grammar_fuzz/$(basename "$g")"
    fi
done
# Image seeds: the small PNGs and JPEGs of tests/data/images (every pixel format the decoder has a
# rule for), not the larger ones that only slow each execution down.
find "$root/tests/data/images" -maxdepth 1 \( -name '*.png' -o -name '*.jpg' \) -size -4k \
    -exec cp {} "$seeds/image_fuzz/" \;
# Seeds kept in the repository (fuzz/seeds/<target>/): JSON schemas and regexes (a 0x00 byte then
# a schema, 0x01 then a regex) from llama.cpp's converter tests.
for d in "$root"/fuzz/seeds/*/; do
    t=$(basename "$d")
    if [[ -d $seeds/$t ]]; then cp "$d"* "$seeds/$t/"; fi
done

if command -v python3 >/dev/null 2>&1; then
python3 - "$seeds" <<'PY'
import json, os, struct, sys
out = sys.argv[1]

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b

def gguf(kvs, tensors, version=3, align=32):
    h = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs))
    for k, t, v in kvs:
        h += gstr(k) + struct.pack('<I', t) + v
    off, datas = 0, []
    for name, dims, typ, nbytes in tensors:
        h += gstr(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
        h += struct.pack('<IQ', typ, off)
        datas.append(bytes((i * 7 + 3) & 255 for i in range(nbytes)))
        off += (nbytes + align - 1) // align * align
    h += b'\0' * (-len(h) % align)
    for d in datas:
        h += d + b'\0' * (-len(d) % align)
    return h

u32 = lambda x: struct.pack('<I', x)
f32 = lambda x: struct.pack('<f', x)
def arr(t, items):
    return struct.pack('<IQ', t, len(items)) + b''.join(items)

llama = [
    ('general.architecture', 8, gstr('llama')),
    ('general.name', 8, gstr('tiny')),
    ('llama.context_length', 4, u32(128)),
    ('llama.embedding_length', 4, u32(8)),
    ('llama.block_count', 4, u32(1)),
    ('llama.feed_forward_length', 4, u32(16)),
    ('llama.attention.head_count', 4, u32(2)),
    ('llama.attention.head_count_kv', 4, u32(1)),
    ('llama.rope.dimension_count', 4, u32(4)),
    ('llama.attention.layer_norm_rms_epsilon', 6, f32(1e-5)),
    ('llama.rope.freq_base', 6, f32(10000.0)),
    ('llama.rope.scaling.type', 8, gstr('yarn')),
    ('llama.rope.scaling.factor', 6, f32(4.0)),
    ('tokenizer.ggml.model', 8, gstr('llama')),
    ('tokenizer.ggml.tokens', 9, arr(8, [gstr(t) for t in ['<unk>', '<s>', '</s>', '<0x0A>', 'a']])),
    ('tokenizer.ggml.scores', 9, arr(6, [f32(-i) for i in range(5)])),
    ('tokenizer.ggml.token_type', 9, arr(5, [struct.pack('<i', t) for t in [2, 3, 3, 6, 1]])),
    ('tokenizer.ggml.bos_token_id', 4, u32(1)),
    ('tokenizer.ggml.add_bos_token', 7, b'\1'),
]
tensors = [
    ('token_embd.weight', [8, 5], 0, 160),
    ('blk.0.attn_q.weight', [8, 8], 1, 128),
    ('blk.0.attn_q.bias', [8], 0, 32),
    ('blk.0.ffn_up.weight', [32, 2], 8, 68),
    ('blk.0.ffn_down.weight', [256], 12, 144),
    ('blk.0.ffn_gate.weight', [256], 14, 210),
    ('output_norm.weight', [8], 30, 16),
    ('output.weight', [32], 2, 18),
]
misc = [
    ('t.u8', 0, b'\7'), ('t.i8', 1, b'\xf9'), ('t.u16', 2, struct.pack('<H', 7)),
    ('t.i16', 3, struct.pack('<h', -7)), ('t.i32', 5, struct.pack('<i', -7)),
    ('t.u64', 10, struct.pack('<Q', 7)), ('t.i64', 11, struct.pack('<q', -7)),
    ('t.f64', 12, struct.pack('<d', 0.5)), ('t.bools', 9, arr(7, [b'\1', b'\0'])),
    ('t.u64s', 9, arr(10, [struct.pack('<Q', 1)])), ('t.empty', 9, arr(4, [])),
    ('general.alignment', 4, u32(64)),
]
seeds = {
    'llama.gguf': gguf(llama, tensors),
    'qwen2.gguf': gguf([(k.replace('llama.', 'qwen2.'), t, v) for k, t, v in llama], tensors[:3]),
    'misc_v2.gguf': gguf(misc, [('x', [4, 2, 1, 1], 0, 32)], version=2, align=64),
    'vocab_only.gguf': gguf(llama[13:], []),
    'empty.gguf': gguf([], []),
}
for name, data in seeds.items():
    open(os.path.join(out, 'gguf_fuzz', name), 'wb').write(data)

def st(entries, meta=None):
    h, data = {}, b''
    if meta: h['__metadata__'] = meta
    for name, dtype, shape, nbytes in entries:
        h[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + nbytes]}
        data += bytes((i * 5 + 1) & 255 for i in range(nbytes))
    j = json.dumps(h).encode()
    j += b' ' * (-(8 + len(j)) % 8)
    return struct.pack('<Q', len(j)) + j + data

sts = {
    'a.safetensors': st([('w', 'F32', [2, 3], 24), ('b', 'BF16', [3], 6), ('h', 'F16', [1, 1], 2)],
                        {'format': 'pt'}),
    'b.safetensors': st([('ids', 'I64', [2], 16), ('s', 'F32', [], 4), ('z', 'F32', [0, 3], 0),
                         ('q', 'U8', [5], 5)]),
    'empty.safetensors': st([]),
}
for name, data in sts.items():
    open(os.path.join(out, 'safetensors_fuzz', name), 'wb').write(data)

# llama2.c: a tiny checkpoint (dim 8, hidden 16, 2 layers, 2 heads, 1 kv head, vocab -4 = separate
# classifier, seq_len 4) and a tokenizer.
C, F, L, H, KVH, V, T = 8, 16, 2, 2, 1, 4, 4
KV = C * KVH // H
n = V*C + L*C + L*C*C + 2*L*KV*C + L*C*C + L*C + 3*L*F*C + C + T*(C//H) + V*C
ck = struct.pack('<7i', C, F, L, H, KVH, -V, T) + b''.join(struct.pack('<f', i * 0.01) for i in range(n))
open(os.path.join(out, 'llama2c_fuzz', 'tiny.bin'), 'wb').write(ck)
tok = struct.pack('<i', 6) + b''.join(struct.pack('<fi', -i, len(t)) + t
                                      for i, t in enumerate([b'<unk>', b'\n<s>\n', b'\n</s>\n', b'<0x0A>', b' the']))
open(os.path.join(out, 'llama2c_fuzz', 'tok.bin'), 'wb').write(tok)

cfgs = {
    'llama3.json': {'model_type': 'llama', 'hidden_size': 64, 'intermediate_size': 128,
                    'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
                    'vocab_size': 100, 'rms_norm_eps': 1e-5, 'max_position_embeddings': 4096,
                    'rope_theta': 500000.0, 'tie_word_embeddings': False, 'hidden_act': 'silu',
                    'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                                     'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}},
    'qwen2.json': {'model_type': 'qwen2', 'hidden_size': 64, 'intermediate_size': 128,
                   'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': None,
                   'head_dim': 16, 'vocab_size': 100, 'rms_norm_eps': 1e-6,
                   'max_position_embeddings': 32768, 'use_sliding_window': False,
                   'rope_scaling': {'type': 'yarn', 'factor': 4.0, 'attention_factor': 1.1}},
    'linear.json': {'model_type': 'llama', 'hidden_size': 64, 'intermediate_size': 128,
                    'num_hidden_layers': 2, 'num_attention_heads': 4, 'vocab_size': 100,
                    'rms_norm_eps': 1e-6, 'max_position_embeddings': 16384, 'attention_bias': True,
                    'rope_scaling': {'type': 'linear', 'factor': 4.0}},
}
for name, c in cfgs.items():
    open(os.path.join(out, 'hf_config_fuzz', name), 'w').write(json.dumps(c, indent=1))

# tokenizer.json: byte-level BPE, SentencePiece-style BPE and WordPiece, each tiny.
sp = '\u2581'
bl = {'model': {'type': 'BPE', 'vocab': {'H': 0, 'e': 1, 'l': 2, 'He': 3, 'll': 4, '\u0120': 5},
                'merges': ['H e', 'l l']},
      'pre_tokenizer': {'type': 'ByteLevel', 'use_regex': True},
      'added_tokens': [{'id': 6, 'content': '<|im_end|>', 'special': True}]}
spm = {'model': {'type': 'BPE', 'byte_fallback': True, 'unk_token': '<unk>',
                 'vocab': {'<unk>': 0, '<s>': 1, '<0x0A>': 2, sp: 3, 'a': 4, sp + 'a': 5},
                 'merges': [sp + ' a']},
       'normalizer': {'type': 'Sequence', 'normalizers': [
           {'type': 'Prepend', 'prepend': sp},
           {'type': 'Replace', 'pattern': {'String': ' '}, 'content': sp}]},
       'added_tokens': [{'id': 1, 'content': '<s>', 'special': True}]}
wp = {'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                'max_input_chars_per_word': 100,
                'vocab': {'[UNK]': 0, '[CLS]': 1, 'hello': 2, '##lo': 3, 'hel': 4}},
      'normalizer': {'type': 'BertNormalizer', 'lowercase': True},
      'pre_tokenizer': {'type': 'BertPreTokenizer'},
      'post_processor': {'type': 'TemplateProcessing', 'single': [
          {'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}]}}
for name, j in {'bytelevel.json': bl, 'spm.json': spm, 'wordpiece.json': wp}.items():
    open(os.path.join(out, 'tokenizer_json_fuzz', name), 'w').write(json.dumps(j))

# OpenAI request bodies (chat and completions shapes).
reqs = {
    'chat.json': {'model': 'tiny', 'messages': [{'role': 'system', 'content': 'Be brief.'},
                  {'role': 'user', 'content': [{'type': 'text', 'text': 'a a\u00e9'}]}],
                  'max_tokens': 8, 'temperature': 0.5, 'top_p': 0.9, 'top_k': 4, 'min_p': 0.1, 'seed': 3,
                  'stop': ['a', 'b'], 'n': 2, 'logprobs': True, 'top_logprobs': 2, 'stream': True,
                  'stream_options': {'include_usage': True}, 'presence_penalty': 0.5,
                  'frequency_penalty': -0.5, 'tools': [{'type': 'function', 'function': {'name': 'f'}}],
                  'logit_bias': {'4': -100, '5': 2.5}},
    'completion.json': {'prompt': ['a', 'aa'], 'max_tokens': 4, 'logprobs': 3, 'echo': True, 'stop': 'x'},
    'ids.json': {'prompt': [1, 4, 5, 300], 'max_tokens': 2},
    # Structured output, tools and FIM (issue 15).
    'schema.json': {'messages': [{'role': 'user', 'content': 'a'}], 'max_tokens': 8,
                    'response_format': {'type': 'json_schema', 'json_schema': {'name': 'p', 'strict': True,
                        'schema': {'type': 'object', 'properties': {'n': {'type': 'integer', 'minimum': 3},
                                   'tags': {'type': 'array', 'items': {'enum': ['x', 'y']}, 'maxItems': 2}},
                                   'required': ['n'], 'additionalProperties': False}}}},
    'json_object.json': {'messages': [{'role': 'user', 'content': 'a'}], 'response_format': {'type': 'json_object'}},
    'grammar.json': {'prompt': 'a', 'max_tokens': 4, 'grammar': 'root ::= [a-z]+ ("," [0-9]{1,3})*'},
    'tools.json': {'messages': [{'role': 'user', 'content': 'weather?'},
                                {'role': 'assistant', 'content': None, 'tool_calls': [{'id': 'call_1', 'type': 'function',
                                 'function': {'name': 'get_weather', 'arguments': '{"city": "Paris"}'}}]},
                                {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'sunny'}],
                   'tools': [{'type': 'function', 'function': {'name': 'get_weather', 'description': 'w',
                              'parameters': {'type': 'object', 'properties': {'city': {'type': 'string'}},
                                             'required': ['city']}}}],
                   'tool_choice': 'required', 'parallel_tool_calls': False, 'stream': True},
    'suffix.json': {'prompt': 'def f(', 'suffix': '    return x\n', 'max_tokens': 4},
    # Images as content parts (issue 20): data: URIs (the tiny model has no image encoder: the
    # parts are checked, then refused), a remote URL, the string form.
    'images.json': {'messages': [{'role': 'user', 'content': [
                        {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==',
                                                            'detail': 'low'}},
                        {'type': 'text', 'text': 'a <image> a'},
                        {'type': 'image_url', 'image_url': 'data:;base64,aGk'}]}], 'max_tokens': 2},
    'image_remote.json': {'messages': [{'role': 'user', 'content': [
                              {'type': 'image_url', 'image_url': {'url': 'https://example.com/a.png'}}]}]},
}
for name, j in reqs.items():
    open(os.path.join(out, 'openai_request_fuzz', name), 'w').write(json.dumps(j))

# Whole HTTP requests for the server (key "k"): keep-alive, pipelining, chunked bodies, streams,
# form bodies, bad framing.
def http(method, path, body=b'', headers=(), key=True, chunked=False):
    h = [f'{method} {path} HTTP/1.1', 'Host: 127.0.0.1']
    if key: h.append('Authorization: Bearer k')
    h += list(headers)
    if chunked:
        h.append('Transfer-Encoding: chunked')
        data = b''.join(b'%x\r\n' % len(body[i:i + 7]) + body[i:i + 7] + b'\r\n' for i in range(0, len(body), 7)) + b'0\r\n\r\n'
    else:
        if body or method == 'POST': h.append(f'Content-Length: {len(body)}')
        data = body
    return ('\r\n'.join(h) + '\r\n\r\n').encode() + data

chat = json.dumps({'messages': [{'role': 'user', 'content': 'a'}], 'max_tokens': 2}).encode()
comp = json.dumps({'prompt': 'a a', 'max_tokens': 2, 'stream': True, 'logprobs': 1}).encode()
https = {
    'health.http': http('GET', '/health', key=False),
    'models.http': http('GET', '/v1/models') + http('GET', '/v1/models/tiny'),
    'chat.http': http('POST', '/v1/chat/completions', chat, ['Content-Type: application/json']),
    'chunked_stream.http': http('POST', '/v1/completions', comp, chunked=True),
    'form.http': http('POST', '/completions', comp, ['Content-Type: application/x-www-form-urlencoded']),
    'pipelined.http': http('GET', '/health', key=False) + http('POST', '/v1/completions', comp) + http('GET', '/metrics'),
    'expect.http': http('POST', '/v1/chat/completions', chat, ['Expect: 100-continue', 'Connection: close']),
    'nokey.http': http('POST', '/v1/completions', comp, key=False),
    'options.http': http('OPTIONS', '/v1/completions', key=False),
    'admin.http': http('POST', '/admin/reload', b'{"model": "/dev/zero"}'),
    'http10.http': b'GET /v1/models HTTP/1.0\r\nAuthorization: bearer k\r\n\r\n',
}
for name, data in https.items():
    open(os.path.join(out, 'http_request_fuzz', name), 'wb').write(data)
PY
fi

assets=${LLMFORGE_ASSETS:-$root/../shared/assets}
if [[ -d $assets/llama.cpp-vocab ]]; then
    # Small real files only: big seeds make every execution slow.
    find "$assets" -name '*.gguf' -size -800k -exec cp {} "$seeds/gguf_fuzz/" \; 2>/dev/null || true
fi
if [[ -d $assets/chat-templates ]]; then
    cp "$assets"/chat-templates/*.jinja "$seeds/chat_template_fuzz/"
fi
if [[ -f $assets/llama2c-stories260K/tok512.bin ]]; then
    cp "$assets/llama2c-stories260K/tok512.bin" "$seeds/llama2c_fuzz/"
fi

status=0
for t in "${targets[@]}"; do
    corpus=$root/fuzz-corpus/$t
    mkdir -p "$corpus"
    echo "== $t for ${secs}s (corpus $corpus)"
    if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        "$build/bin/$t" "$corpus" "$seeds/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" 2>"$build/$t.log"; then
        echo "fuzz/run.sh: $t FAILED (see $build/$t.log and $build/artifacts/)" >&2
        tail -40 "$build/$t.log" >&2
        status=1
    else
        grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE" "$build/$t.log" || true
    fi
done
exit $status
