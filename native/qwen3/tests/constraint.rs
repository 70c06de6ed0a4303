//! Constrained sampling on the real Qwen3 vocabulary with random logits: every output a
//! JSON Schema, regex or choice constraint lets through is valid, a constraint with one
//! answer gives exactly it, output ends when the grammar does, and the constraint waits for
//! `</think>` when told to.

mod common;
use common::on_device;
use mlx::Array;
use qwen3::constraint::{GrammarSource, Grammars};
use qwen3::sampler::{Placement, Sampler, SamplerSpec};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

const VOCAB: usize = 151_936;
const EOS: [u32; 2] = [151_645, 151_643];

fn tokenizer_json() -> PathBuf {
    PathBuf::from(std::env::var("QWEN3_TOKENIZER_DIR").expect("QWEN3_TOKENIZER_DIR")).join("tokenizer.json")
}

/// Draws up to `steps` tokens from random logits under `source`; returns the ids, EOS
/// excluded, and whether an EOS ended them.
fn draw(
    source: GrammarSource,
    placement: Placement,
    seed: u64,
    steps: usize,
    start: Option<u32>,
) -> (Vec<u32>, bool) {
    on_device(move || {
        let grammars = Grammars::from_tokenizer_json(&tokenizer_json(), VOCAB, &EOS)?;
        let constraint = grammars.compile(&source)?.starting_after(start);
        let spec = SamplerSpec {
            temperature: 1.0,
            placement,
            seed,
            ..SamplerSpec::default()
        };
        let mut sampler = Sampler::new(spec, &[vec![]])?.constrained(constraint);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = vec![];
        for _ in 0..steps {
            let logits: Vec<f32> = (0..VOCAB)
                .map(|_| (rng.next_u32() % 1000) as f32 / 200.0)
                .collect();
            let token = sampler
                .sample(&Array::from_slice(&logits, &[1, VOCAB as i32])?)?
                .to_vec::<u32>()?[0];
            if EOS.contains(&token) {
                return Ok((out, true));
            }
            out.push(token);
        }
        Ok((out, false))
    })
}

fn text(ids: &[u32]) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tokenizer_json()).unwrap()).unwrap();
    let bytes = llguidance::token_bytes_from_tokenizer_json(&json).unwrap();
    String::from_utf8(ids.iter().flat_map(|&i| bytes[i as usize].clone()).collect()).unwrap()
}

#[test]
fn json_schema_outputs_parse_and_fit_the_schema() {
    let schema = r#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 9},
        "tag": {"enum": ["a", "b"]}}, "required": ["n", "tag"], "additionalProperties": false}"#;
    for (seed, placement) in [(1, Placement::Graph), (2, Placement::Host), (3, Placement::Graph)] {
        let (ids, ended) = draw(
            GrammarSource::JsonSchema(schema.into()),
            placement,
            seed,
            80,
            None,
        );
        assert!(
            ended,
            "seed {seed}: the grammar never completed: {:?}",
            text(&ids)
        );
        let value: serde_json::Value = serde_json::from_str(&text(&ids)).unwrap();
        let n = value["n"].as_i64().unwrap();
        assert!(
            (3..=9).contains(&n) && ["a", "b"].contains(&value["tag"].as_str().unwrap()),
            "{value}"
        );
        assert_eq!(value.as_object().unwrap().len(), 2);
    }
}

#[test]
fn regex_and_choice_outputs_match_and_a_single_answer_is_forced() {
    let (ids, ended) = draw(
        GrammarSource::Regex(r"[0-9]{3}-[a-z]{2}".into()),
        Placement::Graph,
        4,
        40,
        None,
    );
    let out = text(&ids);
    assert!(ended && out.len() == 6 && out.as_bytes()[3] == b'-', "{out:?}");
    let choices = vec!["red".to_string(), "green light".to_string(), "blue".to_string()];
    for seed in 0..4 {
        let (ids, ended) = draw(
            GrammarSource::Choice(choices.clone()),
            Placement::Host,
            seed,
            20,
            None,
        );
        assert!(ended && choices.contains(&text(&ids)), "{:?}", text(&ids));
    }
    let (ids, _) = draw(
        GrammarSource::Choice(vec!["exactly this, 42".into()]),
        Placement::Graph,
        9,
        20,
        None,
    );
    assert_eq!(text(&ids), "exactly this, 42");
}

#[test]
fn a_constraint_can_wait_for_the_end_of_the_think_block() {
    // With random logits the free part is random: it must not be constrained (it rarely
    // produces </think> by chance in 30 steps, so the regex is never reached).
    let end_think = 151_668;
    let (ids, _) = draw(
        GrammarSource::Regex("x".into()),
        Placement::Graph,
        5,
        30,
        Some(end_think),
    );
    assert!(
        ids.len() == 30 && ids.iter().any(|&t| t != 87),
        "the constraint applied before </think>"
    );
}

#[test]
fn a_grammar_that_does_not_compile_is_invalid_grammar() {
    let errors = on_device(|| {
        let grammars = Grammars::from_tokenizer_json(&tokenizer_json(), VOCAB, &EOS)?;
        Ok([
            GrammarSource::JsonSchema("{not json".into()),
            GrammarSource::JsonSchema(r#"{"type": "nonsense"}"#.into()),
            GrammarSource::Regex("(unclosed".into()),
            GrammarSource::Lark("start: undefined_rule".into()),
            GrammarSource::Choice(vec![]),
        ]
        .map(|g| grammars.compile(&g).err().map(|e| e.kind())))
    });
    assert_eq!(errors, [Some("invalid_grammar"); 5]);
}
