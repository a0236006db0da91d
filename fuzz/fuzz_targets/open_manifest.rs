#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| packcache::engine::fuzzing::open_manifest(data));
