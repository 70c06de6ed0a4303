//! This project's side of a GPU (or CPU) run beside `bench/mlx_lm_side.py`: the same
//! prompts, the same measurements and the same JSON, from the Rust engine the NIF drives
//! (`Model::forward`, the graph `Qwen3.Generate` builds with `loop: :native`; the BEAM's
//! per-token NIF calls are not in it). Used by `scripts/device_check.sh` on machines
//! without Erlang.
//!
//! cargo run --release --example device_side -- CKPT [--device gpu|cpu]
//!     [--compute checkpoint|float32] [--activations float32|int8] [--prompt-lens 128,512]
//!     [--decode 128] [--kv-bits 16|8|4]

use mlx::{async_eval, memory, Array, Device, Dtype, Worker};
use qwen3::kv_buffer::KvQuant;
use qwen3::{sampler, KvCache, LoadOptions, Model};
use std::time::Instant;

struct Args {
    ckpt: String,
    device: Device,
    float32: bool,
    int8: bool,
    prompt_lens: Vec<usize>,
    decode: usize,
    /// The KV cache's storage: float16 (16) or quantized (8, 4; groups of 64); None as computed.
    kv: Option<KvQuant>,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let mut args = Args {
        ckpt: String::new(),
        device: Device::Gpu,
        float32: false,
        int8: false,
        prompt_lens: vec![128, 512],
        decode: 128,
        kv: None,
    };
    while let Some(a) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--device" => {
                let v = value()?;
                args.device = Device::from_name(&v).ok_or(format!("unknown device {v}"))?
            }
            "--compute" => args.float32 = value()? == "float32",
            "--activations" => args.int8 = value()? == "int8",
            "--prompt-lens" => {
                args.prompt_lens = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--prompt-lens: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--decode" => args.decode = value()?.parse().map_err(|e| format!("--decode: {e}"))?,
            "--kv-bits" => {
                let bits = value()?.parse().map_err(|e| format!("--kv-bits: {e}"))?;
                args.kv = Some(KvQuant { bits, group_size: 64 })
            }
            _ if args.ckpt.is_empty() => args.ckpt = a,
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    if args.ckpt.is_empty() {
        return Err("usage: device_side CKPT [--device gpu|cpu] [--compute checkpoint|float32]".into());
    }
    Ok(args)
}

/// The same fixed, non-repeating ids as bench/mlx_lm_side.py and bench/compare.exs.
fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 11) % vocab) as u32).collect()
}

fn ids(tokens: &[u32]) -> qwen3::Result<Array> {
    Ok(Array::from_slice(tokens, &[1, tokens.len() as i32])?)
}

/// Seconds from the prompt to the first token read back.
fn first_token_seconds(model: &Model, tokens: &[u32], kv: Option<KvQuant>) -> qwen3::Result<f64> {
    let start = Instant::now();
    let mut cache: KvCache = model.new_cache_quantized(1, tokens.len() as i32 + 1, kv)?;
    let logits = model.forward(&ids(tokens)?, &mut cache, true)?;
    sampler::greedy(&logits)?.to_vec::<u32>()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Milliseconds between greedy tokens after a 16-token prompt, pipelined as
/// `Qwen3.Generate` does: the next token's graph is queued before this one is read.
fn decode_gaps(model: &Model, vocab: usize, n: usize, kv: Option<KvQuant>) -> qwen3::Result<Vec<f64>> {
    let p = prompt(16, vocab);
    let mut cache = model.new_cache_quantized(1, (p.len() + n + 2) as i32, kv)?;
    let mut token = sampler::greedy(&model.forward(&ids(&p)?, &mut cache, true)?)?;
    async_eval(&[&token])?;
    let (mut gaps, mut last) = (vec![], None::<Instant>);
    for _ in 0..=n {
        let next = sampler::greedy(&model.forward(&token.reshape(&[1, 1])?, &mut cache, true)?)?;
        async_eval(&[&next])?;
        token.to_vec::<u32>()?;
        let now = Instant::now();
        if let Some(t) = last {
            gaps.push(now.duration_since(t).as_secs_f64() * 1000.0);
        }
        last = Some(now);
        token = next;
    }
    token.eval()?; // the last token queued, so that nothing runs while the model goes

    gaps.sort_by(f64::total_cmp);
    Ok(gaps)
}

fn run(args: Args) -> qwen3::Result<String> {
    let opts = LoadOptions {
        dtype: args.float32.then_some(Dtype::Float32),
        int8_activations: args.int8,
        ..LoadOptions::default()
    };
    let load_start = Instant::now();
    let model = Model::load(&args.ckpt, args.device, opts, |_| {})?;
    let load_s = load_start.elapsed().as_secs_f64();
    let vocab = model.config.vocab_size as usize;
    memory::reset_peak();
    first_token_seconds(&model, &prompt(2, vocab), args.kv)?; // warm-up
    let prefill: Vec<String> = args
        .prompt_lens
        .iter()
        .map(|&n| {
            let runs = (0..3)
                .map(|_| first_token_seconds(&model, &prompt(n, vocab), args.kv))
                .collect::<qwen3::Result<Vec<_>>>()?;
            let s = median(runs);
            Ok(format!(
                r#"{{"tokens": {n}, "measured_at": {n}, "ms": {:.3}, "tok_s": {:.2}}}"#,
                s * 1000.0,
                n as f64 / s
            ))
        })
        .collect::<qwen3::Result<_>>()?;
    let gaps = decode_gaps(&model, vocab, args.decode, args.kv)?;
    let p95 = gaps[((gaps.len() as f64 * 0.95) as usize).min(gaps.len() - 1)];
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    Ok(format!(
        r#"{{"prefill": [{}], "decode": {{"tokens": {}, "mean_ms": {mean:.4}, "median_ms": {:.4}, "p95_ms": {:.4}}}, "mlx_peak_bytes": {}, "load_s": {load_s:.2}, "dtype": "{}"}}"#,
        prefill.join(", "),
        gaps.len(),
        median(gaps.clone()),
        p95,
        memory::stats().peak,
        model.dtype.name()
    ))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let device = args.device;
    let result = Worker::for_device(device)
        .and_then(|w| w.run(move || run(args).map_err(|e| mlx::Error::Mlx(format!("{}: {e}", e.kind())))));
    match result {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("device_side on {}: {e}", device.name());
            std::process::exit(1)
        }
    }
}
