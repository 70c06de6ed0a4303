//! `config.json` as the hub carries it for Qwen3: the fields of the published configs
//! (Qwen/Qwen3-4B as transformers 4.51 wrote it), the same re-saved by transformers 4.57
//! (`dtype`, `layer_types`) and 5 (`rope_parameters`), an MLX-community 4-bit block, Qwen's
//! documented YaRN block, and the shapes that must be refused by name rather than misread.

use qwen3::config::{Moe, QuantParams};
use qwen3::Config;
use serde_json::{json, Value};

/// Qwen/Qwen3-4B's config.json, field for field.
fn qwen3_4b() -> Value {
    json!({
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2560,
        "initializer_range": 0.02,
        "intermediate_size": 9728,
        "max_position_embeddings": 40960,
        "max_window_layers": 36,
        "model_type": "qwen3",
        "num_attention_heads": 32,
        "num_hidden_layers": 36,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": null,
        "rope_theta": 1000000,
        "sliding_window": null,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": true,
        "use_sliding_window": false,
        "vocab_size": 151936
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn load(v: &Value) -> qwen3::Result<Config> {
    Config::from_json(&v.to_string())
}

fn refused(v: Value, needle: &str) {
    let e = load(&v).expect_err("must be refused");
    assert_eq!(e.kind(), "invalid_config", "{e}");
    assert!(e.to_string().contains(needle), "{e:?} should name {needle}");
}

#[test]
fn the_published_config_loads_with_what_it_says() {
    let c = load(&qwen3_4b()).unwrap();
    assert_eq!((c.hidden_size, c.head_dim, c.num_hidden_layers), (2560, 128, 36));
    assert_eq!(c.rope_theta(), 1_000_000.0);
    assert!(c.tie_word_embeddings && c.yarn().unwrap().is_none() && !c.is_quantized());
}

#[test]
fn transformers_re_saves_load_the_same() {
    let layer_types = vec!["full_attention"; 36];
    // 4.57: `dtype` beside (or instead of) `torch_dtype`, and `layer_types`.
    let v457 = with(
        qwen3_4b(),
        json!({"dtype": "bfloat16", "torch_dtype": null, "layer_types": layer_types, "transformers_version": "4.57.1"}),
    );
    // 5.x: rope_theta nested in rope_parameters.
    let v5 = with(
        v457.clone(),
        json!({"rope_theta": null, "rope_scaling": null,
               "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}),
    );
    for v in [v457, v5] {
        let c = load(&v).unwrap();
        assert_eq!(c.rope_theta(), 1_000_000.0);
        assert!(c.yarn().unwrap().is_none());
    }
}

#[test]
fn mlx_community_blocks_and_qwens_yarn_load() {
    let q = json!({"group_size": 64, "bits": 4, "mode": "affine"});
    let c = load(&with(
        qwen3_4b(),
        json!({"quantization": q, "quantization_config": q}),
    ))
    .unwrap();
    let p = c.quant_for("model.layers.0.mlp.down_proj").unwrap().unwrap();
    assert_eq!((p.group_size, p.bits), (64, 4));

    let yarn = json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768});
    let c = load(&with(
        qwen3_4b(),
        json!({"rope_scaling": yarn, "max_position_embeddings": 131072}),
    ))
    .unwrap();
    assert_eq!(c.yarn().unwrap().unwrap().factor, 4.0);
}

#[test]
fn what_this_loader_would_misread_is_refused_by_name() {
    let base = qwen3_4b;
    let mut sliding = vec!["full_attention"; 36];
    sliding[35] = "sliding_attention";
    refused(with(base(), json!({"layer_types": sliding})), "sliding_attention");
    refused(
        with(base(), json!({"layer_types": vec!["full_attention"; 35]})),
        "layer_types",
    );
    refused(
        with(base(), json!({"use_sliding_window": true})),
        "sliding-window",
    );
    // Qwen's FP8 and AWQ releases: other tensors, other arithmetic.
    let fp8 = json!({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]});
    refused(with(base(), json!({"quantization_config": fp8})), "fp8");
    let awq =
        json!({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true, "version": "gemm"});
    refused(with(base(), json!({"quantization_config": awq})), "awq");
    refused(
        with(
            base(),
            json!({"quantization": {"group_size": 32, "bits": 4, "mode": "mxfp4"}}),
        ),
        "mxfp4",
    );
    refused(
        with(
            base(),
            json!({"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"]}),
        ),
        "qwen3_moe config without num_experts",
    );
    refused(
        with(
            base(),
            json!({"architectures": ["Qwen3ForSequenceClassification"]}),
        ),
        "Qwen3ForSequenceClassification",
    );
    refused(
        with(
            base(),
            json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}),
        ),
        "llama3",
    );
    refused(with(base(), json!({"attention_bias": true})), "attention_bias");
    refused(with(base(), json!({"hidden_act": "gelu"})), "gelu");
}

/// Qwen/Qwen3-30B-A3B's config.json, field for field.
fn qwen3_30b_a3b() -> Value {
    json!({
        "architectures": ["Qwen3MoeForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "decoder_sparse_step": 1,
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 6144,
        "max_position_embeddings": 40960,
        "max_window_layers": 48,
        "mlp_only_layers": [],
        "model_type": "qwen3_moe",
        "moe_intermediate_size": 768,
        "norm_topk_prob": true,
        "num_attention_heads": 32,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "num_hidden_layers": 48,
        "num_key_value_heads": 4,
        "output_router_logits": false,
        "rms_norm_eps": 1e-06,
        "rope_scaling": null,
        "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.001,
        "sliding_window": null,
        "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": true,
        "use_sliding_window": false,
        "vocab_size": 151936
    })
}

#[test]
fn qwen3_moe_configs_load_with_their_experts() {
    let c = load(&qwen3_30b_a3b()).unwrap();
    let want = Moe {
        experts: 128,
        top_k: 8,
        intermediate_size: 768,
        norm_topk_prob: true,
    };
    assert_eq!(c.moe(), Some(want));
    assert!((0..48).all(|i| c.is_sparse_layer(i)));

    // As mlx-lm's convert writes it: 4 bits, the routers at 8 bits in groups of 64.
    let mut q = json!({"group_size": 64, "bits": 4, "mode": "affine"});
    for i in 0..48 {
        q[format!("model.layers.{i}.mlp.gate")] = json!({"group_size": 64, "bits": 8});
    }
    let c = load(&with(
        qwen3_30b_a3b(),
        json!({"quantization": q, "quantization_config": q}),
    ))
    .unwrap();
    let router = c.quant_for("model.layers.7.mlp.gate").unwrap();
    assert_eq!(
        router,
        Some(QuantParams {
            group_size: 64,
            bits: 8
        })
    );
    let experts = c.quant_for("model.layers.7.mlp.switch_mlp.up_proj").unwrap();
    assert_eq!(
        experts,
        Some(QuantParams {
            group_size: 64,
            bits: 4
        })
    );

    // transformers' rule for which layers are sparse.
    let c = load(&with(
        qwen3_30b_a3b(),
        json!({"decoder_sparse_step": 2, "mlp_only_layers": [3, 47]}),
    ))
    .unwrap();
    let sparse: Vec<usize> = (0..48).filter(|&i| c.is_sparse_layer(i)).collect();
    let want: Vec<usize> = (0..48).filter(|i| i % 2 == 1 && *i != 3 && *i != 47).collect();
    assert_eq!(sparse, want);

    // transformers' defaults where a config leaves them out.
    let c = load(&with(
        qwen3_30b_a3b(),
        json!({"norm_topk_prob": null, "decoder_sparse_step": null, "mlp_only_layers": null}),
    ))
    .unwrap();
    assert!(!c.moe().unwrap().norm_topk_prob);
    assert!((0..48).all(|i| c.is_sparse_layer(i)));
}

#[test]
fn qwen3_moe_settings_that_cannot_hold_are_refused() {
    refused(
        with(qwen3_30b_a3b(), json!({"num_experts_per_tok": 129})),
        "more than num_experts",
    );
    refused(
        with(qwen3_30b_a3b(), json!({"moe_intermediate_size": null})),
        "moe_intermediate_size",
    );
    refused(
        with(qwen3_30b_a3b(), json!({"num_experts": 0})),
        "num_experts must be positive",
    );
    refused(
        with(qwen3_30b_a3b(), json!({"decoder_sparse_step": 0})),
        "decoder_sparse_step",
    );
    refused(
        with(qwen3_30b_a3b(), json!({"mlp_only_layers": [48]})),
        "mlp_only_layers",
    );
    refused(
        with(qwen3_30b_a3b(), json!({"architectures": ["Qwen3ForCausalLM"]})),
        "is not Qwen3MoeForCausalLM",
    );
    // Expert settings on a dense model would be silently ignored: refused instead.
    refused(
        with(qwen3_4b(), json!({"num_experts": 8})),
        "needs model_type qwen3_moe",
    );
}

/// Qwen/Qwen3-8B's and Qwen/Qwen3-4B-Instruct-2507's config.json: as Qwen3-4B's but for
/// their own values (8B: wider, untied; 2507: 256K positions, rope_theta 5e6).
#[test]
fn the_8b_and_2507_configs_load() {
    let qwen3_8b = with(
        qwen3_4b(),
        json!({"hidden_size": 4096, "intermediate_size": 12288, "tie_word_embeddings": false}),
    );
    let c = load(&qwen3_8b).unwrap();
    assert_eq!(
        (c.hidden_size, c.intermediate_size, c.num_hidden_layers),
        (4096, 12288, 36)
    );
    assert!(!c.tie_word_embeddings && c.moe().is_none());

    let instruct_2507 = with(
        qwen3_4b(),
        json!({"max_position_embeddings": 262144, "rope_theta": 5000000}),
    );
    let c = load(&instruct_2507).unwrap();
    assert_eq!((c.max_position_embeddings, c.rope_theta()), (262144, 5_000_000.0));
    assert!(
        c.yarn().unwrap().is_none(),
        "rope_scaling null: plain RoPE at 256K"
    );
}
