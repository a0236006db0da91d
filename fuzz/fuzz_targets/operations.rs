#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| packcache::engine::fuzzing::operations(data));
