//! Reads: `get` (one value, one pack) and `load` (whole scopes, decoded on
//! all cores and handed out as they are ready).

pub mod get;
pub mod load;
