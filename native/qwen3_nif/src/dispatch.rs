//! Running a NIF's work on a device worker: the NIF returns a reference at once and the
//! worker sends `{ref, {:ok, value} | {:error, {kind, message}}}` to the caller.

use crate::error::{NifError, NifResult};
use crate::reply::IntoReply;
use mlx::Worker;
use rustler::{Encoder, Env, OwnedEnv, Term};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

rustler::atoms! { ok, error }

/// Posts `job` to `worker`; the result (made into terms on the worker) goes to the caller.
pub fn dispatch<'a, T, F>(env: Env<'a>, worker: &Arc<Worker>, job: F) -> Term<'a>
where
    T: IntoReply,
    F: FnOnce() -> NifResult<T> + Send + 'static,
{
    let pid = env.pid();
    let reference = env.make_ref();
    let mut reply_env = OwnedEnv::new();
    let saved_ref = reply_env.save(reference);
    let job_worker = worker.clone();
    let posted = worker.submit(move || {
        let result = catch_unwind(AssertUnwindSafe(job))
            .unwrap_or_else(|panic| Err(mlx::panic_error(panic).into()))
            .and_then(|value| value.into_reply(&job_worker));
        // A dead caller cannot receive: its reply (and the arrays in it) is simply dropped.
        let _ = reply_env.send_and_clear(&pid, |env| {
            let payload = match result {
                Ok(reply) => (ok(), reply.encode(env)).encode(env),
                Err(e) => (error(), e.encode(env)).encode(env),
            };
            (saved_ref.load(env), payload)
        });
    });
    match posted {
        Ok(()) => reference.encode(env),
        Err(e) => immediate_error(env, e.into()),
    }
}

/// The synchronous answer of a NIF that failed before posting any work.
pub fn immediate_error(env: Env, e: NifError) -> Term {
    (error(), e.encode(env)).encode(env)
}
