//! Reads: `get` (one value, one pack), `keys` (indexes only) and `load`
//! (whole scopes, decoded on all cores and handed out as they are ready).

pub mod get;
pub mod keys;
pub mod load;
