//! packcache: a persistent build cache for JS bundler plugins.
//!
//! `engine` is the pack storage engine; it never imports napi. With the
//! default `node` feature, `node` (the N-API binding: one class and `hash`,
//! plus argument and option parsing, conversions and error mapping) wraps
//! it. docs/ARCHITECTURE.md draws the layers.

// Every unsafe operation sits in its own block with the invariant it relies on.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod engine;

#[cfg(feature = "node")]
mod node;
