fn main() {
    // Link settings for a Node addon; not needed for the engine alone.
    if std::env::var_os("CARGO_FEATURE_NODE").is_some() {
        napi_build::setup();
    }
}
