//! Keeps a pool's other workers awake through one forward pass.
//!
//! rayon parks a worker that has found no work for 32 rounds of `yield` (tens of microseconds),
//! and the next job pushed wakes it with a futex call; on the development VM a parked worker
//! took 40-110 us to start again (two threads: a `join` of two halves of 20-50 us cost 6 us more
//! than the halves after 0-5 us of one thread working alone, 37-110 us more after 20-200 us). A
//! pass is dozens of parallel steps with short serial ones between them (and halves that end
//! apart), so the other worker was often parked when a step began, and the step ran its halves
//! one after the other until it woke. [`run`] keeps the pool's other workers in a loop that takes
//! any work there is (`rayon::yield_now`) and, when there is none, yields to the OS
//! (`sched_yield`: back at once unless another thread wants the core, so an oversubscribed or
//! shared core is not held; as fast as spinning on 2 threads here), from the start of the pass to
//! its end; then they park as before (`engine/tests/idle.rs`).
//!
//! Why this cannot deadlock: a helper holds its thread until its pass ends, so it must not run
//! on a thread whose stack holds work that its pass needs, directly or through another pass.
//! (1) A pass's helpers are the first jobs it pushes on its thread's deque, and a thief takes a
//! deque's oldest job: none of a pass's work runs on another thread before all its helpers have
//! been taken. (2) A helper that starts on a thread running a pass or a helper returns at once:
//! a pass's own thread never runs one under its pass, and a helper's loop (which takes jobs)
//! never runs one under its own. So a helper of pass P blocks a thread that took it idle, or one
//! running work of another pass Q that it took idle, under which it waits: Q's helpers had all
//! been taken then, and P had one left. P waits for Q only if some helper of Q blocks work of P
//! in the same way, taken while Q had one left and P had none: both cannot hold, as helpers are
//! only ever taken, and neither can a longer cycle. Calls from several threads at once (a model
//! serves many) therefore share the pool as before; `engine/tests/pool.rs` runs six at once.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    /// Whether this thread is running a pass or a helper.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// How long a helper waits for the other helpers to start before it takes work: a helper that
/// took work at once could take a helper job still queued and run it inside its own (where it
/// returns at once, (2) above), leaving the worker it was meant for parked. Long enough for a
/// parked worker to wake; the pass goes on meanwhile, on the threads that have started.
const START_WAIT: Duration = Duration::from_micros(100);

/// Runs `pass` on this thread, a worker of the pool, with `helpers` of the pool's other workers
/// kept awake until it returns or unwinds. Allocates nothing: each helper is the stack job of a
/// `rayon::join`.
pub(super) fn run<R: Send>(helpers: usize, pass: impl FnOnce() -> R + Send) -> R {
    let state = State {
        done: AtomicBool::new(false),
        started: AtomicUsize::new(0),
        helpers,
    };
    nest(helpers, &state, pass)
}

struct State {
    /// Set when the pass has returned or unwound.
    done: AtomicBool,
    /// Helpers that have started.
    started: AtomicUsize,
    helpers: usize,
}

/// Pushes `n` helpers, one per `rayon::join`, then runs the pass.
fn nest<R: Send>(n: usize, state: &State, pass: impl FnOnce() -> R + Send) -> R {
    if n == 0 {
        let _busy = Busy::enter();
        let _end = End(&state.done);
        return pass();
    }
    rayon::join(|| nest(n - 1, state, pass), || state.help()).0
}

impl State {
    /// Takes work until the pass ends: first, for at most [`START_WAIT`], none until every
    /// helper has started.
    fn help(&self) {
        if self.done.load(Ordering::Acquire) || BUSY.with(Cell::get) {
            return;
        }
        let _busy = Busy::enter();
        self.started.fetch_add(1, Ordering::AcqRel);
        let start = Instant::now();
        while self.started.load(Ordering::Acquire) < self.helpers
            && !self.done.load(Ordering::Acquire)
            && start.elapsed() < START_WAIT
        {
            std::hint::spin_loop();
        }
        while !self.done.load(Ordering::Acquire) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::thread::yield_now();
            }
        }
    }
}

/// Marks this thread busy ([`BUSY`]) until dropped, then restores what it was.
struct Busy(bool);

impl Busy {
    fn enter() -> Busy {
        Busy(BUSY.with(|b| b.replace(true)))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(self.0));
    }
}

/// Ends the helpers' loops when dropped: when the pass returns, and when it unwinds.
struct End<'a>(&'a AtomicBool);

impl Drop for End<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// The sum of `range` by halving with `rayon::join`, as the passes divide their work.
    fn sum(range: std::ops::Range<u64>) -> u64 {
        if range.end - range.start <= 64 {
            return range.sum();
        }
        let mid = range.start + (range.end - range.start) / 2;
        let (a, b) = rayon::join(|| sum(range.start..mid), || sum(mid..range.end));
        a + b
    }

    /// Passes that divide work, passes inside passes, and passes on pools of 1 to 4 threads
    /// (0 to 3 helpers) return their results, and the helpers theirs: every call returns.
    #[test]
    fn passes_return_with_their_helpers() {
        for threads in 1..=4 {
            let pool = pool(threads);
            let helpers = threads - 1;
            for _ in 0..200 {
                let got = pool.install(|| run(helpers, || sum(0..10_000)));
                assert_eq!(got, 10_000 * 9_999 / 2);
                let nested = pool.install(|| run(helpers, || run(helpers, || sum(0..100)) + 1));
                assert_eq!(nested, 4_951);
            }
        }
    }

    /// A pass that panics ends its helpers' loops (they would otherwise go on, and the
    /// `join` that holds them never return): the panic reaches the caller, and the pool runs
    /// passes afterwards.
    #[test]
    fn a_pass_that_panics_lets_its_helpers_go() {
        let pool = pool(3);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| run(2, || -> u64 { panic!("the pass") }))
        }));
        assert!(caught.is_err());
        assert_eq!(pool.install(|| run(2, || sum(0..1000))), 499_500);
    }
}
