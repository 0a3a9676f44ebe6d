//! Parallel slices, built on [`Runtime::join`]: [`Runtime::for_each`] and
//! [`Runtime::map_reduce`].
//!
//! The slice is split in halves with `join`, adaptively, as rayon's `par_iter` splits: a
//! budget of splits starts at the number of workers and halves at each level, so a slice
//! nobody steals from becomes a few pieces per worker (little overhead); a half that another
//! worker stole gets the budget back (at least the number of workers), so work spreads again
//! wherever a worker went idle.

use super::Runtime;
use crate::engine::current::current_worker;

/// How far a slice may still be split.
#[derive(Clone, Copy, Debug)]
struct Splitter {
    splits: usize,
    workers: usize,
}

impl Splitter {
    fn new(runtime: &Runtime) -> Self {
        let workers = runtime.workers();
        Self {
            splits: workers,
            workers,
        }
    }

    /// Whether a piece of `len` elements splits again; `stolen`: it runs on another worker
    /// than the one that forked it.
    #[inline]
    fn try_split(&mut self, len: usize, stolen: bool) -> bool {
        if len < 2 {
            return false;
        }
        if stolen {
            self.splits = self.workers.max(self.splits / 2);
            true
        } else if self.splits > 0 {
            self.splits /= 2;
            true
        } else {
            false
        }
    }
}

/// [`Runtime::for_each`] on one piece.
fn for_each<T, F>(runtime: &Runtime, data: &mut [T], f: &F, mut splitter: Splitter, stolen: bool)
where
    T: Send,
    F: Fn(&mut T) + Sync,
{
    if !splitter.try_split(data.len(), stolen) {
        data.iter_mut().for_each(f);
        return;
    }
    let (left, right) = data.split_at_mut(data.len() / 2);
    let forker = current_worker();
    runtime.join(
        || for_each(runtime, left, f, splitter, false),
        || for_each(runtime, right, f, splitter, current_worker() != forker),
    );
}

/// [`Runtime::map_reduce`] on one piece.
fn map_reduce<T, R, I, M, O>(
    runtime: &Runtime,
    data: &[T],
    ops: &(I, M, O),
    mut splitter: Splitter,
    stolen: bool,
) -> R
where
    T: Sync,
    R: Send,
    I: Fn() -> R + Sync,
    M: Fn(&T) -> R + Sync,
    O: Fn(R, R) -> R + Sync,
{
    let (identity, map, reduce) = ops;
    if !splitter.try_split(data.len(), stolen) {
        return data.iter().fold(identity(), |acc, x| reduce(acc, map(x)));
    }
    let (left, right) = data.split_at(data.len() / 2);
    let forker = current_worker();
    let (a, b) = runtime.join(
        || map_reduce(runtime, left, ops, splitter, false),
        || map_reduce(runtime, right, ops, splitter, current_worker() != forker),
    );
    reduce(a, b)
}

impl Runtime {
    /// Calls `f` on every element of `data`, in parallel on this runtime's workers, and
    /// returns when every call has returned: rayon's `data.par_iter_mut().for_each(f)`.
    ///
    /// The slice is split with [`join`](Self::join), adaptively (see the module docs of
    /// `runtime/slices.rs`): a few pieces per worker, more wherever a worker steals. Called
    /// off the runtime's workers, the caller blocks meanwhile.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic is re-raised once every piece already started has finished
    /// (the elements of a piece after the panicking call are left as they were).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokengate::Runtime::builder().workers(2).pin(false).build()?;
    /// let mut v: Vec<u64> = (0..100_000).collect();
    /// rt.for_each(&mut v, |x| *x *= 2);
    /// assert!(v.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn for_each<T, F>(&self, data: &mut [T], f: F)
    where
        T: Send,
        F: Fn(&mut T) + Sync,
    {
        for_each(self, data, &f, Splitter::new(self), false);
    }

    /// Maps every element of `data` with `map` and combines the results with `reduce`, in
    /// parallel on this runtime's workers: rayon's
    /// `data.par_iter().map(map).reduce(identity, reduce)`. `identity()` must be an identity
    /// of `reduce` (each piece starts from it), and `reduce` associative: the pieces are
    /// combined in order (left before right), but grouped as the splitting went.
    ///
    /// # Panics
    ///
    /// If a closure panics, the panic is re-raised once every piece already started has
    /// finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokengate::Runtime::builder().workers(2).pin(false).build()?;
    /// let v: Vec<u64> = (1..=1_000).collect();
    /// let sum_of_squares = rt.map_reduce(&v, || 0, |&x| x * x, |a, b| a + b);
    /// assert_eq!(sum_of_squares, 333_833_500);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn map_reduce<T, R, I, M, O>(&self, data: &[T], identity: I, map: M, reduce: O) -> R
    where
        T: Sync,
        R: Send,
        I: Fn() -> R + Sync,
        M: Fn(&T) -> R + Sync,
        O: Fn(R, R) -> R + Sync,
    {
        map_reduce(
            self,
            data,
            &(identity, map, reduce),
            Splitter::new(self),
            false,
        )
    }
}
