//! Constrained decoding: a grammar (a JSON Schema, a regex, a choice of strings, or Lark)
//! compiled by llguidance against the tokenizer's token trie. At each step it gives the set
//! of tokens that keep the output valid (the sampler drops the rest before any filter), and
//! it is advanced by each token taken. Once the grammar is complete and allows nothing more,
//! only the end-of-sequence tokens are left.

use crate::error::{Error, Result};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use std::sync::Arc;

/// What a constraint is written in.
#[derive(Debug, Clone, PartialEq)]
pub enum GrammarSource {
    /// A JSON Schema, as JSON text.
    JsonSchema(String),
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
    /// llguidance's Lark dialect.
    Lark(String),
}

/// Grammars compile against one vocabulary: built once per model and tokenizer.
pub struct Grammars {
    factory: Arc<ParserFactory>,
}

/// The token trie for `token_bytes` (each id's bytes; special tokens marked as toktrie marks
/// them), padded to the model's `vocab_size`, with `eos` as the tokens that end the output.
pub fn token_trie(mut token_bytes: Vec<Vec<u8>>, vocab_size: usize, eos: &[u32]) -> Result<TokTrie> {
    if token_bytes.len() > vocab_size || eos.is_empty() || eos.iter().any(|&t| t as usize >= vocab_size) {
        return Err(Error::InvalidArgument(format!(
            "a tokenizer of {} tokens and EOS {eos:?} do not fit a vocabulary of {vocab_size}",
            token_bytes.len()
        )));
    }
    // Rows the tokenizer does not know (padding) can never be produced.
    while token_bytes.len() < vocab_size {
        let mut name = format!(".<[{}]>", token_bytes.len()).into_bytes();
        name[0] = TokTrie::SPECIAL_TOKEN_MARKER;
        token_bytes.push(name);
    }
    let trie = TokTrie::from(&TokRxInfo::new(vocab_size as u32, eos[0]), &token_bytes);
    Ok(if eos.len() > 1 {
        trie.with_eos_tokens(eos)
    } else {
        trie
    })
}

impl Grammars {
    /// From a checkpoint's `tokenizer.json`, for a model of `vocab_size` rows whose output
    /// ends at `eos`. Masks need only the trie; text is tokenized greedily through it where
    /// llguidance asks (it does not, for masks).
    pub fn from_tokenizer_json(path: &std::path::Path, vocab_size: usize, eos: &[u32]) -> Result<Grammars> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let json = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        let bytes = llguidance::token_bytes_from_tokenizer_json(&json)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(token_trie(bytes, vocab_size, eos)?));
        Grammars::new(env)
    }

    pub fn new(env: TokEnv) -> Result<Grammars> {
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        factory.quiet();
        Ok(Grammars {
            factory: Arc::new(factory),
        })
    }

    /// Compiles `source`; one that cannot be is `invalid_grammar`, saying why.
    pub fn compile(&self, source: &GrammarSource) -> Result<Constraint> {
        let grammar = match source {
            GrammarSource::JsonSchema(text) => {
                let schema = serde_json::from_str(text)
                    .map_err(|e| Error::InvalidGrammar(format!("the JSON Schema is not JSON: {e}")))?;
                TopLevelGrammar::from_json_schema(compact(schema))
            }
            GrammarSource::Regex(rx) => TopLevelGrammar::from_regex(rx),
            GrammarSource::Choice(choices) if choices.is_empty() => {
                return Err(Error::InvalidGrammar("a choice needs at least one string".into()))
            }
            GrammarSource::Choice(choices) => {
                // Lark string literals take JSON's escapes.
                let quoted: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::Value::from(c.as_str()).to_string())
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}", quoted.join(" | ")))
            }
            GrammarSource::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::InvalidGrammar(e.to_string()))?;
        Ok(Constraint {
            matcher: Matcher::new(Ok(parser)),
            waiting_for: None,
        })
    }
}

/// JSON as `json.dumps` writes it (`", "` and `": "`, no other white space) unless the
/// schema says otherwise (`"x-guidance"`): free white space lets a model wander in it.
fn compact(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(object) = schema.as_object_mut().filter(|o| !o.contains_key("x-guidance")) {
        let options = JsonCompileOptions {
            whitespace_flexible: false,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
            ..JsonCompileOptions::default()
        };
        object.insert(
            "x-guidance".into(),
            serde_json::to_value(&options).expect("options serialize"),
        );
    }
    schema
}

/// One generation's constraint: the matcher, and the token it waits for before it applies
/// (Qwen3's `</think>`: the think block is free text).
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    waiting_for: Option<u32>,
}

impl Constraint {
    /// Applies only from the token after `start` (None: from the first token).
    pub fn starting_after(self, start: Option<u32>) -> Constraint {
        Constraint {
            waiting_for: start,
            ..self
        }
    }

    /// Takes a generated token: the one it waits for, or one the matcher must accept.
    pub fn observe(&mut self, token: u32) -> Result<()> {
        match self.waiting_for {
            Some(start) if start == token => self.waiting_for = None,
            Some(_) => {}
            None => self
                .matcher
                .consume_token(token)
                .map_err(|e| Error::InvalidGrammar(e.to_string()))?,
        }
        Ok(())
    }

    /// For each token of the vocabulary, whether it is allowed next (1) or not (0); None
    /// while the constraint does not apply yet.
    pub fn mask(&mut self) -> Result<Option<Vec<u8>>> {
        if self.waiting_for.is_some() {
            return Ok(None);
        }
        let allowed = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| Error::InvalidGrammar(e.to_string()))?;
        let mut mask = vec![0u8; allowed.len()];
        allowed.iter_set_entries(|i| mask[i] = 1);
        Ok(Some(mask))
    }
}
