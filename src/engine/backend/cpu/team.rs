//! Helper threads that stay awake between kernels: [`run`] deals out the tasks of one
//! kernel to the calling thread and to helpers that spin on a shared counter.
//!
//! Why not rayon's own parallel iterators here: rayon puts a thread that runs out of work to
//! sleep within microseconds, and in the browser's threaded worker waking it again
//! (`Atomics.notify`, then the helper Web Worker's thread getting scheduled) costs about as
//! much as a kernel at a few tokens. A forward pass runs ~50 kernels in a row with short
//! serial gaps, so at 32 tokens thread 0 spent 19% of the forward waiting for a woken helper
//! and 3% waking it (`bench/README.md`, "Browser on an AVX2 host, and helper threads that
//! stay awake"). ONNX Runtime's pool spins between operators for the same reason.
//!
//! The helpers are rayon jobs ([`rayon::spawn`]) that poll the counter and go back to
//! rayon's pool (and to sleep) after [`SPIN_ROUNDS`] polls without work, a few
//! milliseconds: long enough to bridge the gaps inside a forward pass, short enough not
//! to keep a core busy after the answer. The caller always works through the tasks too, so
//! nothing depends on a helper ever starting.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, TryLockError};

/// Polls without work before a helper leaves (each poll is one atomic load; a few ms).
const SPIN_ROUNDS: u32 = 1 << 20;

/// The one job being dealt out. `state` holds the job's number, its task count and the next
/// task to claim in one word ([`State`]), so that a claim checks all three at once: a helper
/// claims a task of the job it read the pointer of, or none at all.
struct Team {
    /// Held by the thread that posts a job, for the job's duration.
    posting: Mutex<()>,
    state: AtomicU64,
    /// Tasks finished (by anyone) of the current job.
    done: AtomicUsize,
    /// The current job: points at a `&(dyn Fn(usize) + Sync)` on the posting thread's stack.
    job: AtomicPtr<()>,
    /// Helpers spinning or about to.
    spinning: AtomicUsize,
    /// A helper's task of the current job panicked.
    helper_panicked: AtomicBool,
}

static TEAM: Team = Team {
    posting: Mutex::new(()),
    state: AtomicU64::new(0),
    done: AtomicUsize::new(0),
    job: AtomicPtr::new(std::ptr::null_mut()),
    spinning: AtomicUsize::new(0),
    helper_panicked: AtomicBool::new(false),
};

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// `state`'s fields: job number (24 bits, wrapping), tasks (20 bits), next task (20 bits).
#[derive(Clone, Copy, PartialEq)]
struct State(u64);

const FIELD: u64 = (1 << 20) - 1;

impl State {
    fn new(number: u64, tasks: usize) -> Self {
        State(((number & 0xff_ffff) << 40) | ((tasks as u64) << 20))
    }
    fn number(self) -> u64 {
        self.0 >> 40
    }
    fn tasks(self) -> usize {
        ((self.0 >> 20) & FIELD) as usize
    }
    fn next(self) -> usize {
        (self.0 & FIELD) as usize
    }
    fn has_work(self) -> bool {
        self.next() < self.tasks()
    }
}

/// Calls `f(0)`, …, `f(tasks - 1)`, each exactly once, spread over this thread and up to
/// `rayon::current_num_threads() - 1` spinning helpers; returns when all have returned.
/// Which thread runs which task varies, so `f` must not care (the kernels write each task's
/// result to its own place). Another thread's job in progress: this one runs on rayon's
/// parallel iterator instead.
pub fn run(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    let threads = rayon::current_num_threads();
    if tasks <= 1 || threads <= 1 {
        (0..tasks).for_each(f);
        return;
    }
    let _posting = match TEAM.posting.try_lock() {
        Ok(guard) => guard,
        // A panic re-raised below poisons the lock; the team itself is consistent again.
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(f);
            return;
        }
    };
    assert!(tasks as u64 <= FIELD, "team::run: {tasks} tasks");
    let job: Job = f;
    TEAM.job.store(&job as *const Job as *mut (), Relaxed);
    TEAM.done.store(0, Relaxed);
    TEAM.helper_panicked.store(false, Relaxed);
    let posted = State::new(State(TEAM.state.load(Relaxed)).number() + 1, tasks);
    // Publishes the two stores above to whoever reads this state (or a later claim's).
    TEAM.state.store(posted.0, Release);

    let wanted = (threads - 1).min(tasks - 1);
    let mut have = TEAM.spinning.load(Acquire);
    while have < wanted {
        match TEAM
            .spinning
            .compare_exchange_weak(have, have + 1, AcqRel, Acquire)
        {
            Ok(_) => {
                // rayon puts the job on this thread's own queue, and this thread runs
                // queued jobs itself whenever it waits inside rayon (candle's parallel
                // element-wise ops do): it must not then spin in place of a helper.
                let poster = rayon::current_thread_index();
                rayon::spawn(move || {
                    if poster.is_some() && rayon::current_thread_index() == poster {
                        TEAM.spinning.fetch_sub(1, AcqRel);
                    } else {
                        spin();
                    }
                });
                have += 1;
            }
            Err(now) => have = now,
        }
    }

    // A panicking task still counts as done, so that the wait below ends; it is re-raised
    // once no helper can touch `job` any more.
    let mut panic = None;
    while let Some(i) = claim(posted.number()) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
            panic.get_or_insert(p);
        }
        TEAM.done.fetch_add(1, Release);
    }
    // Tasks a helper claimed are running; the job (and `job` on this stack) must outlive them.
    while TEAM.done.load(Acquire) < tasks {
        std::hint::spin_loop();
    }
    if let Some(p) = panic {
        resume_unwind(p);
    }
    if TEAM.helper_panicked.load(Relaxed) {
        panic!("a kernel task panicked on a helper thread");
    }
}

/// The next task of job `number`, if any is left.
fn claim(number: u64) -> Option<usize> {
    let mut s = State(TEAM.state.load(Acquire));
    loop {
        if s.number() != number || !s.has_work() {
            return None;
        }
        match TEAM.state.compare_exchange_weak(s.0, s.0 + 1, AcqRel, Acquire) {
            Ok(_) => return Some(s.next()),
            Err(now) => s = State(now),
        }
    }
}

/// A helper: claims tasks of whatever job is posted until [`SPIN_ROUNDS`] polls find none.
fn spin() {
    let mut idle = 0;
    while idle < SPIN_ROUNDS {
        let s = State(TEAM.state.load(Acquire));
        if s.has_work() {
            let job = TEAM.job.load(Relaxed) as *const Job;
            if let Some(i) = claim(s.number()) {
                // SAFETY: `job` was read after the Acquire load of job `s.number()`'s state,
                // so it is that job's pointer or a later one's; and the claim found that job
                // still with unclaimed tasks, so no later job had been posted (`run` posts
                // the next only once every task of this one is done). So it is this job's,
                // and it stays valid until this task counts as done.
                let f = unsafe { *job };
                if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                    TEAM.helper_panicked.store(true, Relaxed);
                }
                TEAM.done.fetch_add(1, Release);
                idle = 0;
                continue;
            }
        }
        idle += 1;
        std::hint::spin_loop();
    }
    TEAM.spinning.fetch_sub(1, AcqRel);
}
