//! Turning a job's result into terms. Conversion starts on the worker (where arrays may be
//! touched) and finishes inside the reply environment.

use crate::error::NifResult;
use mlx::Worker;
use rustler::{Binary, Encoder, Env, OwnedBinary, Resource, ResourceArc, Term};
use std::sync::Arc;

rustler::atoms! { ok }

/// A value ready to become a term in the reply environment.
pub struct Reply(pub Box<dyn for<'a> FnOnce(Env<'a>) -> Term<'a>>);

impl Reply {
    pub fn term<T: Encoder + 'static>(value: T) -> Reply {
        Reply(Box::new(move |env| value.encode(env)))
    }

    pub fn encode<'a>(self, env: Env<'a>) -> Term<'a> {
        (self.0)(env)
    }
}

pub trait IntoReply {
    fn into_reply(self, worker: &Arc<Worker>) -> NifResult<Reply>;
}

impl IntoReply for Reply {
    fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> {
        Ok(self)
    }
}

impl IntoReply for () {
    fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> {
        Ok(Reply::term(ok()))
    }
}

macro_rules! plain_reply {
    ($($t:ty),*) => {$(
        impl IntoReply for $t {
            fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> { Ok(Reply::term(self)) }
        }
    )*};
}
plain_reply!(bool, i64, u64, f64, String);

impl<T: Resource> IntoReply for ResourceArc<T> {
    fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> {
        Ok(Reply::term(self))
    }
}

impl<T: IntoReply> IntoReply for Vec<T> {
    fn into_reply(self, worker: &Arc<Worker>) -> NifResult<Reply> {
        let items = self
            .into_iter()
            .map(|x| x.into_reply(worker))
            .collect::<NifResult<Vec<Reply>>>()?;
        Ok(Reply(Box::new(move |env| {
            let terms: Vec<Term> = items.into_iter().map(|r| r.encode(env)).collect();
            terms.encode(env)
        })))
    }
}

impl<A: IntoReply, B: IntoReply> IntoReply for (A, B) {
    fn into_reply(self, worker: &Arc<Worker>) -> NifResult<Reply> {
        let (a, b) = (self.0.into_reply(worker)?, self.1.into_reply(worker)?);
        Ok(Reply(Box::new(move |env| {
            (a.encode(env), b.encode(env)).encode(env)
        })))
    }
}

impl IntoReply for OwnedBinary {
    fn into_reply(self, _: &Arc<Worker>) -> NifResult<Reply> {
        Ok(Reply(Box::new(move |env| {
            Binary::from_owned(self, env).encode(env)
        })))
    }
}
