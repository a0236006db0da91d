//! Runs independent jobs on all cores with scoped threads, sharing the
//! cores among concurrent calls: every thread that runs jobs holds one of
//! `available_parallelism` permits. Eight concurrent loads each starting a
//! thread per core would put three times the cores' worth of threads
//! beside the JS thread, which then waits its turn for tens of ms; with
//! permits they share the cores as one `loadMany` does.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

thread_local! {
    /// This thread holds a permit (it is a worker, or inside `map`): a
    /// nested `map` runs here without waiting for another (which could
    /// wait forever while every holder waits too).
    static HOLDS: Cell<bool> = const { Cell::new(false) };
}

struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

fn permits() -> &'static Permits {
    static PERMITS: OnceLock<Permits> = OnceLock::new();
    PERMITS.get_or_init(|| Permits { free: Mutex::new(cores()), freed: Condvar::new() })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |p| p.get())
}

/// Permits taken from the pool, given back on drop.
struct Taken(usize);

impl Taken {
    /// One permit, waiting for it if every one is held.
    fn wait_one() -> Taken {
        let p = permits();
        let mut free = p.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = p.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Taken(1)
    }

    /// Up to `want` permits, without waiting.
    fn up_to(want: usize) -> Taken {
        let mut free = permits().free.lock().unwrap_or_else(|e| e.into_inner());
        let n = want.min(*free);
        *free -= n;
        Taken(n)
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if self.0 > 0 {
            let p = permits();
            *p.free.lock().unwrap_or_else(|e| e.into_inner()) += self.0;
            p.freed.notify_all();
        }
    }
}

/// Marks the current thread as holding a permit until dropped.
struct Holding(bool);

impl Holding {
    fn start() -> Holding {
        Holding(HOLDS.with(|h| h.replace(true)))
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HOLDS.with(|h| h.set(self.0));
    }
}

/// Applies `f` to every item on the calling thread plus as many helper
/// threads as free permits allow (up to `available_parallelism` in all)
/// and returns the results in input order.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let _own = match HOLDS.with(Cell::get) {
        true => Taken(0),
        false => Taken::wait_one(),
    };
    let _holding = Holding::start();
    let helpers = Taken::up_to(cores().min(n).saturating_sub(1));
    if helpers.0 == 0 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        let item = slots[i].lock().unwrap().take().expect("each slot is taken once");
        let r = f(item);
        *results[i].lock().unwrap() = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 0..helpers.0 {
            s.spawn(|| {
                let _holding = Holding::start();
                work()
            });
        }
        work();
    });
    results.into_iter().map(|m| m.into_inner().unwrap().expect("every job ran")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_maps_never_run_more_job_threads_than_cores() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let job = |_: usize| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            // A nested map runs on the permit its caller holds.
            let inner = map(vec![1, 2, 3], |x| x * 2);
            running.fetch_sub(1, Ordering::SeqCst);
            inner.iter().sum::<usize>()
        };
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..8).map(|_| s.spawn(|| map((0..40).collect(), job))).collect();
            for call in calls {
                assert_eq!(call.join().unwrap(), vec![12; 40]);
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= cores(), "peak {} on {} cores", peak.load(Ordering::SeqCst), cores());
    }
}
