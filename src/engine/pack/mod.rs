//! One pack file: its byte layout (`format`), the writer that encodes one,
//! the reader that checks and reads one in place, and the key filter the
//! manifest keeps per pack (`bloom`).

pub mod bloom;
pub mod format;
pub mod reader;
pub mod writer;
