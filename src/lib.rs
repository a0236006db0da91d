//! packcache: a persistent build cache for JS bundler plugins.
//!
//! `engine` is the pack storage engine; it never imports napi. With the
//! default `node` feature, the N-API binding (`binding`: one class and
//! `hash`, plus option parsing, conversions and error mapping) wraps it.

// Every unsafe operation sits in its own block with the invariant it relies on.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod engine;

#[cfg(feature = "node")]
mod args;
#[cfg(feature = "node")]
pub mod binding;
#[cfg(feature = "node")]
mod convert;
#[cfg(feature = "node")]
mod fast;
#[cfg(feature = "node")]
mod js_errors;
#[cfg(feature = "node")]
mod options;
#[cfg(feature = "node")]
mod receiver;
#[cfg(feature = "node")]
mod stream;
