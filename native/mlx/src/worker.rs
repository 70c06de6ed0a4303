//! One OS thread per device runs every MLX call: MLX streams are thread-local, so graph
//! building, evaluation and freeing all happen on the thread that owns the stream.

use crate::error::{Error, Result};
use crate::ffi::bridge;
use parking_lot::Mutex;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::{self, ThreadId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Gpu,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }

    pub fn from_name(name: &str) -> Option<Device> {
        match name {
            "cpu" => Some(Device::Cpu),
            "gpu" => Some(Device::Gpu),
            _ => None,
        }
    }

    /// Whether this MLX build can run on the device (Metal or CUDA for `Gpu`).
    pub fn is_available(self) -> bool {
        bridge::device_available(self == Device::Gpu)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread that owns one device's MLX stream. Obtain it with [`Worker::for_device`].
pub struct Worker {
    device: Device,
    thread: ThreadId,
    jobs: Sender<Job>,
    /// Held while a job runs; the exit guard takes it for good (see [`stop_workers_at_exit`]).
    running: Arc<Mutex<()>>,
}

static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());

impl Worker {
    /// The worker of `device`, started on first use and kept for the life of the process.
    pub fn for_device(device: Device) -> Result<Arc<Worker>> {
        let mut workers = WORKERS.lock();
        if let Some(w) = workers.iter().find(|w| w.device == device) {
            return Ok(w.clone());
        }
        let worker = Arc::new(Self::spawn(device)?);
        workers.push(worker.clone());
        Ok(worker)
    }

    fn spawn(device: Device) -> Result<Worker> {
        if !device.is_available() {
            return Err(Error::DeviceUnavailable(format!(
                "device {} is not available in this MLX build",
                device.name()
            )));
        }
        let (jobs, inbox) = channel::<Job>();
        let (ready_tx, ready) = channel();
        let running = Arc::new(Mutex::new(()));
        let lock = running.clone();
        let handle = thread::Builder::new()
            .name(format!("mlx-{}", device.name()))
            .spawn(move || {
                let bound = bridge::bind_thread_to_device(device == Device::Gpu).map_err(Error::from);
                let ok = bound.is_ok();
                if ok {
                    register_exit_guard();
                }
                let _ = ready_tx.send(bound);
                if !ok {
                    return;
                }
                // A job that panics loses only itself; callers reply from inside their job.
                while let Ok(job) = inbox.recv() {
                    let _running = lock.lock();
                    if EXITING.load(Ordering::Acquire) {
                        // The process is exiting: MLX's statics may already be gone.
                        std::mem::forget(job);
                        continue;
                    }
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| Error::WorkerGone(format!("cannot start the MLX worker: {e}")))?;
        let thread = handle.thread().id();
        ready
            .recv()
            .map_err(|_| Error::WorkerGone("MLX worker died while starting".into()))??;
        Ok(Worker {
            device,
            thread,
            jobs,
            running,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// True when called from this worker's own thread.
    pub fn is_current(&self) -> bool {
        thread::current().id() == self.thread
    }

    /// Queues `job`; jobs run one at a time in submission order.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<()> {
        self.jobs.send(Box::new(job)).map_err(|undelivered| {
            // The job may own MLX values: never drop them on this thread.
            std::mem::forget(undelivered);
            Error::WorkerGone(format!("the {} worker has stopped", self.device.name()))
        })
    }

    /// Runs `f` on the worker and waits for its result (panics become errors).
    /// Meant for Rust callers such as tests and benches; NIFs reply by message instead.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        if self.is_current() {
            return f();
        }
        let (tx, rx) = channel();
        self.submit(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p))));
        })?;
        rx.recv()
            .map_err(|_| Error::WorkerGone("the worker dropped the job".into()))?
    }
}

static EXITING: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

/// Registered by each worker after MLX has built its statics, so it runs before their
/// destructors: the VM's `exit()` would otherwise free MLX's allocator while a worker is
/// still dropping arrays (heap corruption at shutdown).
fn register_exit_guard() {
    // SAFETY: `stop_workers_at_exit` is a plain function that lives as long as the process.
    unsafe { atexit(stop_workers_at_exit) };
}

extern "C" fn stop_workers_at_exit() {
    if EXITING.swap(true, Ordering::AcqRel) {
        return; // each worker registered this guard; the first call does the work
    }
    let Some(workers) = WORKERS.try_lock_for(std::time::Duration::from_secs(5)) else {
        return;
    };
    for worker in workers.iter().filter(|w| !w.is_current()) {
        // Wait for the job in progress; the guard is leaked so no other job ever starts.
        std::mem::forget(worker.running.lock());
    }
}

/// Turns a caught panic payload into an error message.
pub fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Mlx(format!("internal panic: {msg}"))
}

/// A value bound to one worker thread: it can be moved and shared anywhere, but only read
/// on its worker, and it is always dropped there (MLX frees buffers on the owning stream).
pub struct Pinned<T: 'static> {
    value: ManuallyDrop<T>,
    worker: Arc<Worker>,
}

// SAFETY: the inner value is only reachable through `get`, which checks the thread, and it
// is dropped on the worker thread (see `Drop`).
unsafe impl<T: 'static> Send for Pinned<T> {}
unsafe impl<T: 'static> Sync for Pinned<T> {}

struct AssertSend<T>(T);
// SAFETY: used only to carry a `Pinned` value back to its own worker thread.
unsafe impl<T> Send for AssertSend<T> {}

impl<T: 'static> Pinned<T> {
    /// Binds `value` to `worker`; must be called on that worker's thread.
    pub fn new(value: T, worker: &Arc<Worker>) -> Result<Pinned<T>> {
        if !worker.is_current() {
            return Err(Error::WrongDevice("value created off its worker thread".into()));
        }
        Ok(Pinned {
            value: ManuallyDrop::new(value),
            worker: worker.clone(),
        })
    }

    pub fn get(&self) -> Result<&T> {
        if self.worker.is_current() {
            Ok(&self.value)
        } else {
            Err(Error::WrongDevice(format!(
                "this value lives on the {} device and cannot be used here",
                self.worker.device().name()
            )))
        }
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }
}

impl<T: 'static> Drop for Pinned<T> {
    fn drop(&mut self) {
        // SAFETY: `value` is never used again after being taken here.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        if self.worker.is_current() {
            drop(value);
        } else {
            let value = AssertSend(value);
            // If the worker is gone the value leaks (see `submit`): freeing it here would race MLX.
            let _ = self.worker.submit(move || drop(value));
        }
    }
}
