//! Data parallelism over rows, key parts and points: rayon with the default `parallel` feature, plain
//! iterators without it. Results are identical either way.

#[cfg(feature = "parallel")]
pub(crate) fn par_iter<T: Sync>(items: &[T]) -> rayon::slice::Iter<'_, T> {
    use rayon::prelude::*;
    items.par_iter()
}

#[cfg(feature = "parallel")]
pub(crate) fn par_chunks<T: Sync>(items: &[T], size: usize) -> rayon::slice::Chunks<'_, T> {
    use rayon::prelude::*;
    items.par_chunks(size)
}

#[cfg(not(feature = "parallel"))]
pub(crate) fn par_iter<T: Sync>(items: &[T]) -> core::slice::Iter<'_, T> {
    items.iter()
}

#[cfg(not(feature = "parallel"))]
pub(crate) fn par_chunks<T: Sync>(items: &[T], size: usize) -> core::slice::Chunks<'_, T> {
    items.chunks(size)
}

/// Runs `a` and `b`, in parallel where possible.
#[cfg(feature = "parallel")]
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    rayon::join(a, b)
}

#[cfg(not(feature = "parallel"))]
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    (a(), b())
}

/// Brings the rayon traits into scope where the `parallel` feature is on.
#[cfg(feature = "parallel")]
#[allow(unused_imports)]
pub(crate) use rayon::prelude::*;
