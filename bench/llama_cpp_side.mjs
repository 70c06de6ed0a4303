// The llama.cpp side of bench/compare.exs: a GGUF checkpoint (bench/gguf_checkpoint.py) run
// by llama.cpp's CPU backend through node-llama-cpp's prebuilt binary, with the same prompt
// ids, prompt lengths and greedy decode length as the other sides. Prints one JSON object.
//   node bench/llama_cpp_side.mjs MODEL.gguf --vocab N --prompt-lens 128,512 --decode 128 --threads 2
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "prompt-lens": { type: "string", default: "128,512" },
    decode: { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
    vocab: { type: "string" },
    runs: { type: "string", default: "3" },
  },
});
const [modelPath] = positionals;
const promptLens = values["prompt-lens"].split(",").map(Number);
const decodeTokens = Number(values.decode);
const threads = Number(values.threads);
const runs = Number(values.runs);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(0.95 * xs.length))];
const now = () => Number(process.hrtime.bigint()) / 1e6;

// The same fixed, non-repeating ids as compare.exs and mlx_lm_side.py.
const prompt = (n, vocab) => Array.from({ length: n }, (_, i) => (i * 7919 + 11) % vocab);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const vocab = Number(values.vocab);
const contextSize = Math.max(...promptLens) + decodeTokens + 32;
const context = await model.createContext({
  contextSize,
  batchSize: Math.max(...promptLens),
  threads: { ideal: threads, min: threads },
  sequences: 1,
});
const sequence = context.getSequence();

// Prefill: the whole prompt in one batch, no token sampled; median of `runs` after a warm-up.
const prefill = [];
for (const n of promptLens) {
  const ids = prompt(n, vocab);
  const times = [];
  for (let r = 0; r <= runs; r++) {
    await sequence.clearHistory();
    const start = now();
    await sequence.evaluateWithoutGeneratingNewTokens(ids);
    if (r > 0) times.push(now() - start);
  }
  prefill.push({ tokens: n, measured_at: n, tok_s: (n * 1000) / median(times) });
}

// Decode: greedy tokens after a 16-token prompt, the gap between consecutive tokens.
const gaps = [];
for (let r = 0; r < runs; r++) {
  await sequence.clearHistory();
  let last = null;
  let count = 0;
  for await (const _token of sequence.evaluate(prompt(16, vocab), { temperature: 0 })) {
    const t = now();
    if (last !== null) gaps.push(t - last);
    last = t;
    if (++count > decodeTokens) break;
  }
}

// The package's root: two folders above its entry point (dist/index.js).
const root = dirname(dirname(fileURLToPath(import.meta.resolve("node-llama-cpp"))));
const info = JSON.parse(readFileSync(join(root, "llama", "llama.cpp.info.json"), "utf8"));
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;

console.log(
  JSON.stringify({
    llama_cpp: `llama.cpp ${info.tag} (node-llama-cpp ${version} prebuilt CPU binary)`,
    threads: context.currentThreads,
    prefill,
    decode: { mean_ms: mean(gaps), median_ms: median(gaps), p95_ms: p95(gaps), tokens: gaps.length / runs },
    max_rss_bytes: process.resourceUsage().maxRSS * 1024,
  }),
);
await context.dispose();
await model.dispose();
