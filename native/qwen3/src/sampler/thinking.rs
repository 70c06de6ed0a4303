//! A thinking budget (as llama.cpp's `--reasoning-budget`): once a row has `budget` tokens
//! after an unclosed `<think>`, its next token is `</think>`, and the answer follows. The
//! count lives in the MLX graph beside the tokens, so a budget adds no wait for the host.

use crate::error::Result;
use mlx::{Array, Binary, Dtype};

pub struct ThinkingBudget {
    open: u32,
    close: u32,
    budget: i32,
    /// Per row, the tokens since an unclosed `<think>`, or -1 outside one: `[B]` int32.
    inside: Array,
    /// `[1, V]`: true for every token but `</think>`; made at the first step (V is known then).
    others: Option<Array>,
}

impl ThinkingBudget {
    /// `history` holds each row's prompt: a prompt that ends inside `<think>` (the model
    /// was told to think) starts counting from there.
    pub fn new(open: u32, close: u32, budget: u32, history: &[Vec<u32>]) -> Result<ThinkingBudget> {
        let counts: Vec<i32> = history
            .iter()
            .map(|row| match row.iter().rposition(|&t| t == open || t == close) {
                Some(i) if row[i] == open => (row.len() - 1 - i) as i32,
                _ => -1,
            })
            .collect();
        Ok(ThinkingBudget {
            open,
            close,
            budget: budget.min(i32::MAX as u32) as i32,
            inside: Array::from_slice(&counts, &[counts.len() as i32])?,
            others: None,
        })
    }

    /// `logits` `[B, V]` with every token but `</think>` blocked in the rows whose budget is spent.
    pub fn apply(&mut self, logits: &Array) -> Result<Array> {
        let shape = logits.shape();
        let spent = self
            .inside
            .binary(Binary::GreaterEqual, &Array::scalar(self.budget)?)?
            .reshape(&[shape[0], 1])?;
        let others = match &self.others {
            Some(o) if o.dim(1)? == shape[1] => o.clone(),
            _ => {
                let ids = Array::arange(0.0, shape[1] as f64, 1.0, Dtype::Int32)?.reshape(&[1, shape[1]])?;
                let close = Array::scalar(self.close as i32)?;
                let o = ids
                    .binary(Binary::Less, &close)?
                    .binary(Binary::LogicalOr, &ids.binary(Binary::Greater, &close)?)?;
                o.eval()?;
                self.others = Some(o.clone());
                o
            }
        };
        let blocked = spent.binary(Binary::LogicalAnd, &others)?;
        Ok(Array::select(
            &blocked,
            &Array::scalar(f32::NEG_INFINITY)?,
            logits,
        )?)
    }

    /// Counts each row's drawn token (`[B]`): `</think>` ends the block, `<think>` opens one.
    pub fn observe(&mut self, tokens: &Array) -> Result<()> {
        let t = tokens.astype(Dtype::Int32)?;
        let is = |id: u32| -> Result<Array> { Ok(t.binary(Binary::Equal, &Array::scalar(id as i32)?)?) };
        let outside = Array::scalar(-1i32)?;
        let counting = self.inside.binary(Binary::GreaterEqual, &Array::scalar(0i32)?)?;
        let next = Array::select(&counting, &self.inside.add(&Array::scalar(1i32)?)?, &outside)?;
        let next = Array::select(&is(self.open)?, &Array::scalar(0i32)?, &next)?;
        self.inside = Array::select(&is(self.close)?, &outside, &next)?;
        Ok(())
    }
}
