//! The Hugging Face tokenizer (`tokenizers` crate) as a resource. Tokenizing touches no MLX,
//! so these NIFs answer directly, on dirty schedulers (a long text takes milliseconds).

use crate::error::{NifError, NifResult};
use rustler::{Resource, ResourceArc};
use tokenizers::Tokenizer;

pub struct TokenizerRef {
    tokenizer: Tokenizer,
}

#[rustler::resource_impl]
impl Resource for TokenizerRef {}

fn tokenizer_error(e: impl std::fmt::Display) -> NifError {
    NifError::new("tokenizer", e.to_string())
}

#[rustler::nif(schedule = "DirtyIo")]
fn tokenizer_load(path: String) -> NifResult<ResourceArc<TokenizerRef>> {
    if !std::path::Path::new(&path).is_file() {
        return Err(NifError::new("io", format!("no tokenizer file at {path}")));
    }
    let tokenizer =
        Tokenizer::from_file(&path).map_err(|e| NifError::new("invalid_file", format!("{path}: {e}")))?;
    Ok(ResourceArc::new(TokenizerRef { tokenizer }))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn tokenizer_encode(t: ResourceArc<TokenizerRef>, text: String, add_special: bool) -> NifResult<Vec<u32>> {
    let encoding = t.tokenizer.encode(text, add_special).map_err(tokenizer_error)?;
    Ok(encoding.get_ids().to_vec())
}

/// Ids the tokenizer does not know (a model's padded vocabulary rows) decode to nothing.
#[rustler::nif(schedule = "DirtyCpu")]
fn tokenizer_decode(t: ResourceArc<TokenizerRef>, ids: Vec<u32>, skip_special: bool) -> NifResult<String> {
    t.tokenizer.decode(&ids, skip_special).map_err(tokenizer_error)
}

#[rustler::nif]
fn tokenizer_token_to_id(t: ResourceArc<TokenizerRef>, token: String) -> Option<u32> {
    t.tokenizer.token_to_id(&token)
}

#[rustler::nif]
fn tokenizer_id_to_token(t: ResourceArc<TokenizerRef>, id: u32) -> Option<String> {
    t.tokenizer.id_to_token(id)
}

#[rustler::nif]
fn tokenizer_vocab_size(t: ResourceArc<TokenizerRef>, with_added: bool) -> usize {
    t.tokenizer.get_vocab_size(with_added)
}

/// Added tokens as `[{id, content, special?}]`, sorted by id.
#[rustler::nif]
fn tokenizer_added_tokens(t: ResourceArc<TokenizerRef>) -> Vec<(u32, String, bool)> {
    let mut tokens: Vec<(u32, String, bool)> = t
        .tokenizer
        .get_added_tokens_decoder()
        .iter()
        .map(|(id, tok)| (*id, tok.content.clone(), tok.special))
        .collect();
    tokens.sort();
    tokens
}

/// Each token's own bytes (what OpenAI's logprobs report): a byte-level BPE token's
/// characters mapped back to the bytes they stand for, an added token's text as it is.
/// A token that is part of a character has bytes but no valid UTF-8 of its own.
#[rustler::nif]
fn tokenizer_token_bytes<'a>(
    env: rustler::Env<'a>,
    t: ResourceArc<TokenizerRef>,
    ids: Vec<u32>,
) -> Vec<rustler::Binary<'a>> {
    let byte_level = matches!(
        t.tokenizer.get_decoder(),
        Some(tokenizers::DecoderWrapper::ByteLevel(_))
    );
    let added = t.tokenizer.get_added_tokens_decoder();
    ids.iter()
        .map(|id| {
            let bytes: Vec<u8> = match (added.get(id), t.tokenizer.id_to_token(*id)) {
                (Some(token), _) => token.content.clone().into_bytes(),
                (None, Some(token)) if byte_level => token.chars().filter_map(byte_of).collect(),
                _ => t.tokenizer.decode(&[*id], false).unwrap_or_default().into_bytes(),
            };
            let mut bin = rustler::OwnedBinary::new(bytes.len());
            bin.as_mut_slice().copy_from_slice(&bytes);
            bin.release(env)
        })
        .collect()
}

/// GPT-2's byte-level alphabet, reversed: printable bytes stand for themselves, the other
/// 68 for the characters from U+0100 on, in byte order.
fn byte_of(c: char) -> Option<u8> {
    let printable =
        |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let code = c as u32;
    if printable(code) {
        return Some(code as u8);
    }
    let n = code.checked_sub(0x100)?;
    (0u32..=255)
        .filter(|&b| !printable(b))
        .nth(n as usize)
        .map(|b| b as u8)
}
