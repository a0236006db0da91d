//! The N-API binding: the JS class `PackStorage` and `hash` (`binding`),
//! the lean `set` entry points (`fast`), receiver-checked prototype methods
//! (`receiver`), streaming loads (`stream`), and below them argument and
//! option parsing, conversions and error mapping. Only this folder imports
//! napi; it reaches the engine through `engine::Store` and the types a
//! load hands out.

mod args;
pub mod binding;
mod convert;
mod fast;
mod fingerprint;
mod inspect;
mod js_errors;
mod options;
mod receiver;
mod stream;
